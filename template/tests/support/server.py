"""Helpers for tests that run the service as a real process."""

import os
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import httpx2
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    base_url: str
    # The internal port (ADMIN_PORT): /metrics and the /jobs admin routes.
    admin_url: str = ""

    def get(
        self,
        path: str,
        params: dict[str, float] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx2.Response:
        return httpx2.get(self.base_url + path, params=params, headers=headers, timeout=10)

    def started(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"server exited early with {self.process.returncode}")
        try:
            return self.get("/startupz").status_code == 200
        except httpx2.TransportError:
            return False

    def output(self) -> str:
        """Everything the process wrote to stdout; call after it exited."""
        stdout, _ = self.process.communicate(timeout=30)
        return stdout


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout}s")


ProductionRequirement = Callable[[pytest.FixtureRequest], Mapping[str, str]]

PRODUCTION_REQUIREMENTS: list[ProductionRequirement] = []
"""What APP_ENV=production needs from the optional features the service was generated with,
for tests that build a production app (the ``production_environment`` fixture). A feature's
fixture plugin (tests/support/<feature>_fixtures.py) appends a function that returns the
variables; it may request fixtures (a database, say) through the request it is given."""


ClusterRequirement = Callable[[pytest.FixtureRequest], Mapping[str, str]]

CLUSTER_REQUIREMENTS: list[ClusterRequirement] = []
"""What the replicas of the cluster suite (tests/cluster/) need from the optional features, like
PRODUCTION_REQUIREMENTS; the cluster lives for the whole suite, so these functions may only
request session-scoped fixtures."""


def require_binary(path: str | None) -> str:
    """The server binary, or a skip outside CI; under CI=true a missing server is a failure."""
    if path is not None:
        return path
    message = "server binary not installed (see README: Test)"
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(message)
    pytest.skip(message)


class StoreServer(Protocol):
    """What the tests use of a store server helper (redis_server or memcached_server)."""

    SCHEME: str
    url: str
    port: int

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def command_count(self, command: str) -> int: ...

    def total_commands(self) -> int: ...
