"""A TCP gate in front of a test server, for outage tests that need no second server.

Closed, nothing listens on the gate's port and every connection through it is cut: what a
client sees when the server dies. Opened again, the same server answers on the same port with
the data it had, as a server that comes back does. Stranded, the connections already made hang
(nothing answers, nothing resets them) while new ones get through: a server that came back at
another address. Starting a second emulator for each outage
test cost about 2 s of CPU per start; a gate costs a few threads.
"""

import contextlib
import socket
import threading

from .server import free_port

LOOPBACK = "127.0.0.1"
CHUNK = 64 * 1024


class TcpGate:
    """Forwards ``127.0.0.1:<port>`` to ``<target_host>:<target_port>`` while open."""

    def __init__(self, target_port: int, target_host: str = LOOPBACK) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self._stranded: set[socket.socket] = set()
        self._lock = threading.Lock()
        # Connections the gate let through since it was made: a client's pool opens no more.
        self.accepted = 0

    def open(self) -> None:
        listener = socket.create_server((LOOPBACK, self.port))  # SO_REUSEADDR: same port again
        listener.settimeout(0.05)  # the accept loop notices close() within this time
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self) -> None:
        """Stop listening and cut every forwarded connection."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            connections, self._connections = self._connections, set()
            self._stranded.clear()
        for connection in connections:
            _cut(connection)

    def strand(self) -> None:
        """Leave every forwarded connection hanging: what is sent on it is dropped without an
        answer or a reset, as when the server restarted at another address (a container or pod
        with a new IP). New connections reach the server as before."""
        with self._lock:
            self._stranded |= self._connections

    def redirect(self, value: str) -> str:
        """The URL (or any text) with the target server's address replaced by the gate's."""
        host, port = self.target
        return value.replace(f"{host}:{port}", f"{LOOPBACK}:{self.port}")

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:  # closed by close()
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _cut(client)
                continue
            for sock in (client, upstream):
                sock.settimeout(None)
            with self._lock:
                self._connections.update((client, upstream))
                self.accepted += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(CHUNK):
                if source not in self._stranded:
                    sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)  # pass the end of the stream on
        except OSError:  # cut by close(), or the other side went away
            _cut(source)
            _cut(sink)


def _cut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already cut, or never connected
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
