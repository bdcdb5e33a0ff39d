"""The rendered HAProxy configuration, run for real: round robin over the replicas, a replica whose
/readyz fails leaves the rotation, a replica that stops accepting connections costs no
request (retried on another one), a slow GET is retried on another replica while a slow POST
reaches a replica exactly once, and the balancer has one server slot per APP_REPLICAS.

The rendered file finds replicas through Docker's DNS; here the `server-template` line is
replaced by two static servers on free loopback ports (small HTTP servers standing in for the
service), the frontend binds a free loopback port, and `timeout server` is 1 s (for the slow
requests). Everything else is the file as rendered.
"""

from __future__ import annotations

import http.client
import re
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from combinations import default_combination
from helpers import require
from servers import free_port, running, wait_until

pytestmark = [pytest.mark.tier1]


SERVER_TIMEOUT_SECONDS = 1.0


class Replica:
    """An HTTP server answering /readyz (200 or 503), GET and POST / (its own name); `slow`
    makes / answer after the balancer's server timeout; `received` counts requests to /."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ready = True
        self.slow = False
        self.received: Counter[str] = Counter()
        replica = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.do_GET()

            def do_GET(self) -> None:
                if self.path == "/readyz":
                    status, body = (200, b"ready") if replica.ready else (503, b"draining")
                else:
                    replica.received[self.command] += 1
                    if replica.slow:
                        time.sleep(SERVER_TIMEOUT_SECONDS * 2)
                    status, body = 200, replica.name.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def local_config(rendered: str, frontend_port: int, replicas: list[Replica]) -> str:
    servers = "\n".join(f"    server {r.name} 127.0.0.1:{r.port}" for r in replicas)
    text, count = re.subn(r"(?m)^\s*server-template .*$", servers, rendered)
    assert count == 1, "the rendered haproxy.cfg no longer has one server-template line"
    text, count = re.subn(r"(?m)^(\s*bind )\S+", rf"\g<1>127.0.0.1:{frontend_port}", text)
    assert count == 1, "the rendered haproxy.cfg no longer has one bind line"
    text, count = re.subn(
        r"(?m)^(\s*timeout server )\S+", rf"\g<1>{SERVER_TIMEOUT_SECONDS:g}s", text
    )
    assert count == 1, "the rendered haproxy.cfg no longer has one timeout server line"
    return text.replace(" resolvers docker init-addr none", "")


@pytest.fixture
def balancer(renderer, tmp_path: Path) -> Iterator[tuple[int, list[Replica]]]:
    haproxy = require(shutil.which("haproxy"), "haproxy (apt-get install haproxy)")
    project = renderer(default_combination().data, tmp_path / "project")
    rendered = (project / "deploy/compose/haproxy.cfg").read_text(encoding="utf-8")
    replicas = [Replica("app1"), Replica("app2")]
    port = free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(local_config(rendered, port, replicas), encoding="utf-8")
    try:
        with running([haproxy, "-db", "-f", str(cfg)], lambda: _get(port), "haproxy answers"):
            yield port, replicas
    finally:
        for replica in replicas:
            if replica.thread.is_alive():
                replica.stop()


def _get(port: int, method: str = "GET") -> tuple[int, str] | None:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request(method, "/", body=b"{}" if method == "POST" else None)
        response = connection.getresponse()
        result = response.status, response.read().decode()
        connection.close()
        return result
    except OSError:
        return None


def served_by(port: int, requests: int) -> Counter[str]:
    results = [_get(port) for _ in range(requests)]
    assert all(r is not None and r[0] == 200 for r in results), results
    return Counter(body for _, body in results)  # type: ignore[misc]


def test_round_robin_over_every_replica(balancer) -> None:
    port, _ = balancer
    assert served_by(port, 20) == Counter({"app1": 10, "app2": 10})


def test_a_draining_replica_leaves_the_rotation(balancer) -> None:
    port, replicas = balancer
    replicas[1].ready = False  # what SIGTERM does to /readyz
    wait_until(lambda: set(served_by(port, 4)) == {"app1"}, what="app2 leaves the rotation")
    assert served_by(port, 20) == Counter({"app1": 20})
    replicas[1].ready = True
    wait_until(lambda: set(served_by(port, 4)) == {"app1", "app2"}, what="app2 comes back")


def test_a_stopped_replica_costs_no_request(balancer) -> None:
    """The replica is gone before the health check noticed: connections to it fail, and HAProxy
    retries each such request on the other replica instead of answering 503."""
    port, replicas = balancer
    replicas[1].stop()
    assert served_by(port, 20) == Counter({"app1": 20})


def test_a_slow_get_is_retried_on_another_replica(balancer) -> None:
    """A GET that times out on one replica is safe to repeat: the balancer sends it on."""
    port, replicas = balancer
    replicas[0].slow = True
    results = [_get(port) for _ in range(2)]
    assert results == [(200, "app2"), (200, "app2")], results
    assert replicas[0].received["GET"] >= 1  # the first attempt went to the slow replica


def test_a_slow_post_reaches_a_replica_exactly_once(balancer) -> None:
    """A POST that times out may have been applied: the balancer answers 504 and never sends it
    to another replica, so it cannot be applied twice."""
    port, replicas = balancer
    for replica in replicas:
        replica.slow = True
    result = _get(port, "POST")
    assert result is not None and result[0] == 504, result
    time.sleep(SERVER_TIMEOUT_SECONDS * 2)  # a retry would have arrived by now
    assert sum(r.received["POST"] for r in replicas) == 1, [r.received for r in replicas]


def _show_stat(socket_path: Path) -> str:
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(socket_path))
        client.sendall(b"show stat\n")
        chunks = []
        while chunk := client.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


@pytest.mark.parametrize("replicas", [12])
def test_the_balancer_has_a_slot_per_replica(renderer, tmp_path: Path, replicas: int) -> None:
    """server-template takes its size from APP_REPLICAS (compose.yaml passes it to the
    balancer): 12 replicas get 12 slots, and without the variable HAProxy refuses to start."""
    haproxy = require(shutil.which("haproxy"), "haproxy (apt-get install haproxy)")
    project = renderer(default_combination().data, tmp_path / "project")
    rendered = (project / "deploy/compose/haproxy.cfg").read_text(encoding="utf-8")
    socket_path = tmp_path / "haproxy.sock"
    text = rendered.replace("global\n", f"global\n    stats socket {socket_path} level admin\n", 1)
    text = re.sub(r"(?m)^(\s*bind )\S+", rf"\g<1>127.0.0.1:{free_port()}", text)
    text = text.replace(" resolvers docker init-addr none", " init-addr none")
    text = re.sub(r"(?ms)^resolvers docker\n.*?\n\n", "", text)
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(text.replace(" app:8000", " 127.0.0.1:9"), encoding="utf-8")
    refused = subprocess.run([haproxy, "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert refused.returncode != 0 and "server-template" in refused.stderr, refused.stderr
    env = {"PATH": "/usr/bin:/bin", "APP_REPLICAS": str(replicas)}
    command = [haproxy, "-db", "-f", str(cfg)]
    with running(command, socket_path.exists, "haproxy's stats socket", env=env):
        wait_until(lambda: "app1," in _show_stat(socket_path), what="haproxy answers")
        servers = {
            line.split(",")[1]
            for line in _show_stat(socket_path).splitlines()
            if line.startswith("app,") and line.split(",")[1] != "BACKEND"
        }
        assert servers == {f"app{i}" for i in range(1, replicas + 1)}
