"""The HTTP server's explicit settings, on a real process: keep-alive and trusted proxies."""

import json
import signal
import socket
import time
from collections.abc import Callable

from .support.server import ServerProcess

REQUEST = b"GET /livez HTTP/1.1\r\nHost: test\r\n\r\n"


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


def connect(server: ServerProcess) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    connection = socket.create_connection((host, int(port)), timeout=10)
    connection.sendall(REQUEST)
    assert read_response(connection).startswith(b"HTTP/1.1 200")
    return connection


def test_idle_keep_alive_connections_close_after_the_configured_timeout(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(KEEPALIVE_TIMEOUT_SECONDS="1")
    connection = connect(server)
    time.sleep(2.5)
    assert connection.recv(1) == b"", "idle connection still open after KEEPALIVE_TIMEOUT_SECONDS"
    connection.close()


def test_keep_alive_connections_are_reused_within_the_timeout(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(KEEPALIVE_TIMEOUT_SECONDS="30")
    connection = connect(server)
    time.sleep(2.5)
    connection.sendall(REQUEST)
    assert read_response(connection).startswith(b"HTTP/1.1 200")
    connection.close()


def access_log_clients(server: ServerProcess) -> list[str]:
    server.process.send_signal(signal.SIGINT)
    server.process.wait(timeout=30)
    lines = [json.loads(line) for line in server.output().splitlines() if line.strip()]
    return [line["client"] for line in lines if line.get("event") == "request"]


def test_forwarded_client_address_is_used_only_from_trusted_proxies(
    start_server: Callable[..., ServerProcess],
) -> None:
    forwarded = {"X-Forwarded-For": "203.0.113.7"}
    trusted = start_server(FORWARDED_ALLOW_IPS="127.0.0.1")
    trusted.get("/", headers=forwarded)
    assert access_log_clients(trusted) == ["203.0.113.7"]

    untrusted = start_server(FORWARDED_ALLOW_IPS="10.9.8.7")
    untrusted.get("/", headers=forwarded)
    assert access_log_clients(untrusted) == ["127.0.0.1"]
