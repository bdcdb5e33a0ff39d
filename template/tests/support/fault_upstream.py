"""A local upstream that misbehaves on request, for the outbound client's tests.

It runs on the test's own event loop (no process), speaking HTTP/1.1 through h11. Paths:
``/ok`` (200, the request's headers as JSON), ``/slow/<seconds>``, ``/status/<code>`` (with
``?retry_after=<value>``: that ``Retry-After``), ``/flaky/<n>`` (503 for the first n requests
to that path, then 200) and ``/reset`` (the connection is reset, no answer). It records every
request and the most connections that were open at once.
"""

import asyncio
import json
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

import h11


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    at: float  # time.monotonic()


class FaultUpstream:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.open_connections = 0
        self.most_connections = 0
        self._served: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> "FaultUpstream":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def hits(self, path: str) -> int:
        """How many requests reached ``path`` (query string ignored)."""
        return sum(1 for request in self.received if request.path == path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_connections += 1
        self.most_connections = max(self.most_connections, self.open_connections)
        connection = h11.Connection(h11.SERVER)
        request: h11.Request | None = None
        try:
            while True:
                event = connection.next_event()
                if event is h11.NEED_DATA:
                    connection.receive_data(await reader.read(65536))
                elif isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.EndOfMessage) and request is not None:
                    if not await self._answer(connection, request, writer):
                        return
                    connection.start_next_cycle()
                    request = None
                elif isinstance(event, h11.ConnectionClosed):
                    return
        except (ConnectionError, h11.RemoteProtocolError, h11.LocalProtocolError):
            return
        finally:
            self.open_connections -= 1
            writer.close()

    async def _answer(
        self, connection: h11.Connection, request: h11.Request, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer ``request``; False when the connection was dropped instead."""
        target = urlsplit(request.target.decode())
        headers = {name.decode().lower(): value.decode() for name, value in request.headers}
        self.received.append(
            Received(request.method.decode(), target.path, headers, time.monotonic())
        )
        self._served[target.path] += 1
        parts = target.path.strip("/").split("/")
        extra: list[tuple[str, str]] = []
        status, body = 200, json.dumps({"headers": headers}).encode()
        if parts[0] == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        if parts[0] == "slow":
            await asyncio.sleep(float(parts[1]))
        elif parts[0] == "status":
            status, body = int(parts[1]), b"{}"
            for value in parse_qs(target.query).get("retry_after", []):
                extra.append(("retry-after", value))
        elif parts[0] == "flaky" and self._served[target.path] <= int(parts[1]):
            status, body = 503, b"{}"
        head = h11.Response(
            status_code=status,
            headers=[
                ("content-type", "application/json"),
                ("content-length", str(len(body))),
                *extra,
            ],
        )
        data = connection.send(head) or b""
        data += connection.send(h11.Data(data=body)) or b""
        data += connection.send(h11.EndOfMessage()) or b""
        writer.write(data)
        await writer.drain()
        return True


@contextmanager
def fault_upstream_in_a_thread() -> Iterator[FaultUpstream]:
    """The upstream on an event loop of its own, for code that runs its own loop (an
    application under ``AppClient``, tests/support/framework.py)."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop = asyncio.Event()
    upstream = FaultUpstream()

    async def serve() -> None:
        async with upstream:
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    try:
        assert started.wait(timeout=10), "the fault upstream did not start"
        yield upstream
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        loop.close()
