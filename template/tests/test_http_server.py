"""The HTTP server's explicit settings, on a real process: keep-alive and trusted proxies."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from .support.server import ServerProcess, Services, free_port

REQUEST = b"GET /livez HTTP/1.1\r\nHost: test\r\n\r\n"
# Probes are not logged: the access log shows this request only.
FORWARDED_REQUEST = (
    "GET / HTTP/1.1\r\nHost: test\r\nX-Forwarded-For: 203.0.113.7\r\nX-Request-ID: {id}\r\n\r\n"
)
KEEPALIVE_TIMEOUT_SECONDS = 1
CLOSED_WITHIN_SECONDS = 4


def read_response(connection: socket.socket) -> bytes:
    """One whole response (headers and Content-Length body) from a keep-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += connection.recv(65536)
    return head


def connect(server: ServerProcess, source: str = "127.0.0.1") -> socket.socket:
    """A connection from ``source`` (any 127.x address is this machine) that made one request."""
    host, port = server.base_url.removeprefix("http://").split(":")
    connection = socket.create_connection((host, int(port)), timeout=10, source_address=(source, 0))
    connection.sendall(REQUEST)
    assert read_response(connection).startswith(b"HTTP/1.1 200")
    return connection


@pytest.fixture
def keep_alive_server(module_services: Services) -> ServerProcess:
    """One server for the module's keep-alive tests, with a short keep-alive timeout."""
    timeout = str(KEEPALIVE_TIMEOUT_SECONDS)
    return module_services.shared("keep-alive", KEEPALIVE_TIMEOUT_SECONDS=timeout)


def test_idle_keep_alive_connections_close_after_the_configured_timeout(
    keep_alive_server: ServerProcess,
) -> None:
    connection = connect(keep_alive_server)
    # Blocks until the server closes the idle connection; the socket's timeout is the bound,
    # well under uvicorn's own default (5 s), so an ignored setting fails here.
    connection.settimeout(CLOSED_WITHIN_SECONDS)
    try:
        assert connection.recv(1) == b"", "the server answered something unasked"
    except TimeoutError:
        raise AssertionError(
            f"idle connection still open {CLOSED_WITHIN_SECONDS}s after it went idle "
            f"(KEEPALIVE_TIMEOUT_SECONDS={KEEPALIVE_TIMEOUT_SECONDS})"
        ) from None
    finally:
        connection.close()


def test_keep_alive_connections_are_reused_within_the_timeout(
    keep_alive_server: ServerProcess,
) -> None:
    connection = connect(keep_alive_server)
    time.sleep(KEEPALIVE_TIMEOUT_SECONDS / 4)  # idle, but for less than the timeout
    connection.sendall(REQUEST)
    assert read_response(connection).startswith(b"HTTP/1.1 200")
    connection.close()


def access_log_clients(server: ServerProcess) -> dict[str, str]:
    """The client address each request's access line names, keyed by request ID.

    Keyed rather than listed: a server may write a request's access line after the next
    request's, so the order of lines says nothing about which request they belong to.
    """
    server.process.send_signal(signal.SIGINT)
    server.process.wait(timeout=30)
    lines = [json.loads(line) for line in server.output().splitlines() if line.strip()]
    return {line["request_id"]: line["client"] for line in lines if line.get("event") == "request"}


def test_forwarded_client_address_is_used_only_from_trusted_proxies(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(FORWARDED_ALLOW_IPS="127.0.0.1")
    # The trusted proxy (127.0.0.1) and an untrusted client (127.0.0.2) send the same header.
    for source in ("127.0.0.1", "127.0.0.2"):
        connection = connect(server, source)
        connection.sendall(FORWARDED_REQUEST.format(id=f"from-{source}").encode())
        assert read_response(connection).startswith(b"HTTP/1.1 200")
        connection.close()
    assert access_log_clients(server) == {
        "from-127.0.0.1": "203.0.113.7",
        "from-127.0.0.2": "127.0.0.2",
    }


def test_test_servers_listen_outside_the_ports_outgoing_connections_take() -> None:
    """A port from the ephemeral range can be taken by any client socket before a test server
    binds it (the server then exits with "Address already in use"): picks stay below it."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
        ephemeral_start = int(ports.read().split()[0])
    picked = [free_port() for _ in range(500)]
    assert max(picked) < ephemeral_start, sorted(picked)
    # Never the same port twice in one process: a service's PORT and ADMIN_PORT are two picks
    # made before either binds, and the service refuses equal ones.
    assert len(set(picked)) == len(picked)


@pytest.mark.processes
def test_processes_the_suite_starts_cache_their_bytecode() -> None:
    """The suite starts the service about a hundred times: with PYTHONDONTWRITEBYTECODE inherited
    from the shell, every start would compile all of its modules again (conftest.py drops it)."""
    child = subprocess.run(
        [sys.executable, "-c", "import sys; print(sys.dont_write_bytecode)"],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip() == "False"
