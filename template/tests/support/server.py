"""Helpers for tests that run the service as a real process."""

import functools
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import httpx2
import pytest

# Built once and passed to every client the helpers make: httpx builds a TLS context for each
# client, loading the CA bundle (about 30 ms of CPU) even for the loopback http:// URLs the tests
# call, so a readiness poll every 20 ms would spend more CPU than the server it waits for.
TLS_CONTEXT = httpx2.create_ssl_context()


# Ports the tests' servers listen on come from below the kernel's ephemeral range: the kernel
# gives ephemeral ports to every outgoing connection too, so a port picked there can be taken by
# some client socket between the pick and the server's bind (a server then fails to start with
# "Address already in use"). Linux's default range starts at 32768, macOS's at 49152.
LISTEN_PORTS = range(20000, 32768)
_pick = random.SystemRandom()


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return LISTEN_PORTS.stop


def _worker_ports() -> range:
    """This process's share of the listening range: pytest-xdist workers draw from disjoint
    slices, so two workers can never pick the same port between one's pick and its bind."""
    ports = range(LISTEN_PORTS.start, min(LISTEN_PORTS.stop, _ephemeral_start()))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(worker.removeprefix("gw")) if worker.startswith("gw") else 0
    return ports[index % count :: count]


_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on, outside the range outgoing connections draw from.

    A port is handed out once per process: two picks made before either server binds (a
    service's PORT and ADMIN_PORT) can never be the same port.
    """
    ports = _worker_ports()
    for _ in range(200):
        port = _pick.choice(ports) if ports else 0
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use: another test's server, or a client of this machine
            chosen: int = sock.getsockname()[1]
        _handed_out.add(chosen)
        return chosen
    raise AssertionError(f"no free port in {ports}")


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
        return httpx2.get(
            self.base_url + path,
            params=params,
            headers=headers,
            timeout=10,
            verify=TLS_CONTEXT,
        )

    def started(self) -> bool:
        """For a process started with ``wait=False``: up yet? Fails if it already exited."""
        if self.process.poll() is not None:
            raise AssertionError(f"server exited early with {self.process.returncode}")
        return service_started(self.base_url)

    def output(self) -> str:
        """Everything the process wrote to stdout; call after it exited."""
        stdout, _ = self.process.communicate(timeout=30)
        return stdout


def json_log_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON lines a process has written to the log file ``path`` so far.

    Whole lines only: a live process may be in the middle of writing the last one, which is
    read whole on a later call. Lines that are not JSON objects (a library printing) are skipped.
    """
    text = path.read_text(errors="replace") if path.exists() else ""
    whole = text[: text.rfind("\n") + 1]
    return [json.loads(line) for line in whole.splitlines() if line.startswith("{")]


def service_started(base_url: str) -> bool:
    """Whether the service at ``base_url`` answers /startupz with 200."""
    try:
        return httpx2.get(base_url + "/startupz", timeout=10, verify=TLS_CONTEXT).status_code == 200
    except httpx2.TransportError:
        return False


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout}s")


def answers(call: Callable[[], object], *errors: type[BaseException]) -> bool:
    """Whether ``call()`` returns instead of raising one of ``errors`` (a server not up yet)."""
    try:
        call()
    except errors:
        return False
    return True


def http_answers(url: str) -> bool:
    """Whether anything answers HTTP at ``url`` (any status: the server is up)."""
    return answers(lambda: httpx2.get(url, timeout=1, verify=TLS_CONTEXT), httpx2.TransportError)


def start_process(
    command: Sequence[str],
    ready: Callable[[], bool],
    timeout: float = 30.0,
    **popen: Any,
) -> "subprocess.Popen[Any]":
    """Start a server process and return once ``ready()`` is true.

    The one start-and-wait loop of the test servers (the store, storage emulators, PostgreSQL,
    the service itself): a process that exits before it is ready fails at once with its exit
    code instead of after the timeout, and one that never gets ready is killed, not leaked.
    """
    process: subprocess.Popen[Any] = subprocess.Popen(list(command), **popen)

    def up() -> bool:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout is not None else ""
            if isinstance(output, bytes):
                output = output.decode(errors="replace")
            raise AssertionError(
                f"{command[0]} exited early with {process.returncode}; its output ends:\n"
                f"{output[-3000:]}"
            )
        return ready()

    try:
        wait_until(up, timeout)
    except BaseException:
        stop_process(process)
        raise
    return process


def stop_process(process: "subprocess.Popen[Any] | None", kill: bool = False) -> None:
    """Stop a process started by ``start_process`` (SIGTERM, or SIGKILL with ``kill``)."""
    if process is None or process.poll() is not None:
        return
    if kill:
        process.kill()
    else:
        process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


class Services:
    """Runs the service (``script``: its entry point plus test routes) as real processes.

    Every process listens on a free loopback port and is killed by ``stop_all``. ``shared``
    starts one process per name and returns it again afterwards, for fixtures that keep
    replicas for a whole module: start them from a function-scoped fixture, so the
    environment they inherit is the one the autouse fixtures cleaned.
    """

    # Test processes do not drain on SIGTERM (production waits SHUTDOWN_DRAIN_SECONDS for the
    # load balancer): only the tests of the drain set it.
    DEFAULTS: ClassVar[dict[str, str]] = {
        "HOST": "127.0.0.1",
        "SESSION_COOKIE_SECURE": "false",  # the tests talk plain http on loopback
        "SHUTDOWN_DRAIN_SECONDS": "0",
    }

    def __init__(self, script: Path) -> None:
        self.script = script
        self.started: list[ServerProcess] = []
        self.by_name: dict[str, ServerProcess] = {}

    def start(self, wait: bool = True, **env: str) -> ServerProcess:
        """Start one process; ``wait=False`` returns at once, for tests of a starting service."""
        port, admin_port = free_port(), free_port()
        command = [sys.executable, str(self.script)]
        ports = {"PORT": str(port), "ADMIN_PORT": str(admin_port)}
        popen: dict[str, Any] = {
            "env": {**os.environ, **self.DEFAULTS, **ports, **env},
            "stdout": subprocess.PIPE,
            "stderr": subprocess.STDOUT,
            "text": True,
        }
        base_url, admin_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"
        if not wait:
            server = ServerProcess(subprocess.Popen(command, **popen), base_url, admin_url)
        else:
            ready = functools.partial(service_started, base_url)
            process = start_process(command, ready, timeout=60, **popen)
            server = ServerProcess(process, base_url, admin_url)
        self.started.append(server)
        return server

    def shared(self, name: str, **env: str) -> ServerProcess:
        """The process called ``name``, started with ``env`` on first use."""
        if name not in self.by_name:
            self.by_name[name] = self.start(True, **env)
        return self.by_name[name]

    def stop_all(self) -> None:
        for server in self.started:
            stop_process(server.process, kill=True)
        self.started.clear()
        self.by_name.clear()


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
