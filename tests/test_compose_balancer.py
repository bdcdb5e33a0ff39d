"""The rendered HAProxy configuration, run for real: round robin over the replicas, a replica whose
/readyz fails leaves the rotation, and a replica that stops accepting connections costs no
request (retried on another one).

The rendered file finds replicas through Docker's DNS; here the `server-template` line is
replaced by two static servers on free loopback ports (small HTTP servers standing in for the
service), and the frontend binds a free loopback port. Everything else is the file as rendered.
"""

from __future__ import annotations

import http.client
import re
import shutil
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

pytestmark = [pytest.mark.tier1]


class Replica:
    """An HTTP server answering /readyz (200 or 503) and / (its own name)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ready = True
        replica = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/readyz":
                    status, body = (200, b"ready") if replica.ready else (503, b"draining")
                else:
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


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def local_config(rendered: str, frontend_port: int, replicas: list[Replica]) -> str:
    servers = "\n".join(f"    server {r.name} 127.0.0.1:{r.port}" for r in replicas)
    text, count = re.subn(r"(?m)^\s*server-template .*$", servers, rendered)
    assert count == 1, "the rendered haproxy.cfg no longer has one server-template line"
    text, count = re.subn(r"(?m)^(\s*bind )\S+", rf"\g<1>127.0.0.1:{frontend_port}", text)
    assert count == 1, "the rendered haproxy.cfg no longer has one bind line"
    return text.replace(" resolvers docker init-addr none", "")


@pytest.fixture
def balancer(renderer, tmp_path: Path) -> Iterator[tuple[int, list[Replica]]]:
    haproxy = require(shutil.which("haproxy"), "haproxy (apt-get install haproxy)")
    project = renderer(default_combination().data, tmp_path / "project")
    rendered = (project / "deploy/compose/haproxy.cfg").read_text(encoding="utf-8")
    replicas = [Replica("app1"), Replica("app2")]
    port = _free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(local_config(rendered, port, replicas), encoding="utf-8")
    process = subprocess.Popen(
        [haproxy, "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_until(lambda: _get(port) is not None, what="haproxy answers")
        yield port, replicas
    finally:
        process.terminate()
        process.wait(timeout=10)
        for replica in replicas:
            if replica.thread.is_alive():
                replica.stop()


def _get(port: int) -> tuple[int, str] | None:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/")
        response = connection.getresponse()
        result = response.status, response.read().decode()
        connection.close()
        return result
    except OSError:
        return None


def wait_until(condition, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting until {what}")


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
