"""A cluster on loopback: replicas of the service as separate processes behind haproxy.

Every process the harness starts writes a pidfile under the run directory; ``Cluster.stop``
(and the atexit hook, should pytest die first) kills whatever those files still name, so a run
never leaves a process behind.
"""

import atexit
import contextlib
import csv
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

from ..support.server import TLS_CONTEXT, StoreServer, free_port, start_process, wait_until

# haproxy polls /readyz this often and takes a replica out after one failure, so a draining
# replica leaves the rotation well within SHUTDOWN_DRAIN_SECONDS.
HEALTH_CHECK_INTERVAL_MS = 200
DRAIN_SECONDS = 2
GRACE_SECONDS = 5


def _kill_pidfiles(directory: Path) -> None:
    for pidfile in directory.glob("*.pid"):
        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
            os.killpg(int(pidfile.read_text().strip()), signal.SIGKILL)
        pidfile.unlink(missing_ok=True)


@dataclass
class Replica:
    name: str
    port: int
    admin_port: int
    env: dict[str, str]
    run_dir: Path
    module: str
    process: subprocess.Popen[bytes] | None = None
    exit_codes: list[int] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        """The internal port (ADMIN_PORT): metrics and admin routes, never behind the balancer."""
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def pidfile(self) -> Path:
        return self.run_dir / "pids" / f"{self.name}.pid"

    @property
    def log_path(self) -> Path:
        return self.run_dir / "logs" / f"{self.name}.log"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            # Its own process group: a kill reaches the server and anything it spawned.
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pidfile.write_text(str(self.process.pid))

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> httpx2.Response:
        return httpx2.get(
            self.base_url + path, headers=dict(headers or {}), timeout=5, verify=TLS_CONTEXT
        )

    def status(self, path: str) -> int | None:
        try:
            return self.get(path).status_code
        except httpx2.TransportError:
            return None

    def ready(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited: see {self.log_path}")
        return self.status("/readyz") == 200

    def terminate(self) -> int:
        """SIGTERM, as the kubelet sends it, then wait for the exit; returns the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=DRAIN_SECONDS + GRACE_SECONDS + 10)
        self.pidfile.unlink(missing_ok=True)
        self.exit_codes.append(code)
        return code

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.pidfile.unlink(missing_ok=True)


class LoadBalancer:
    """haproxy: round robin, health checks on /readyz, retries of refused connections."""

    def __init__(self, run_dir: Path, replicas: list[Replica], binary: str) -> None:
        self.run_dir = run_dir
        self.replicas = replicas
        self.binary = binary
        self.port = free_port()
        self.socket_path = run_dir / "haproxy.sock"
        self.config_path = run_dir / "haproxy.cfg"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> str:
        servers = "\n".join(f"    server {r.name} 127.0.0.1:{r.port} check" for r in self.replicas)
        return f"""\
global
    maxconn 2048
    stats socket {self.socket_path} mode 600 level admin

defaults
    mode http
    timeout connect 1s
    timeout client 15s
    timeout server 15s
    retries 3
    option redispatch
    retry-on conn-failure empty-response

frontend cluster
    bind 127.0.0.1:{self.port}
    default_backend replicas

backend replicas
    balance roundrobin
    # As in deploy/compose/haproxy.cfg: only safe methods are sent again once a replica got them.
    http-request disable-l7-retry if !METH_GET !METH_OPTIONS
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter {HEALTH_CHECK_INTERVAL_MS}ms fall 1 rise 1
    http-response set-header X-Served-By %[srv_name]
{servers}
"""

    def start(self) -> None:
        self.config_path.write_text(self.config())
        with (self.run_dir / "logs" / "haproxy.log").open("ab") as log:
            self.process = start_process(
                [self.binary, "-db", "-f", str(self.config_path)],
                lambda: self.server_states() == dict.fromkeys(self.names(), "UP"),
                timeout=20,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        (self.run_dir / "pids" / "haproxy.pid").write_text(str(self.process.pid))

    def names(self) -> list[str]:
        return [r.name for r in self.replicas]

    def server_states(self) -> dict[str, str]:
        """What haproxy thinks of each replica right now ("UP", "DOWN", ...)."""
        if not self.socket_path.exists():
            return {}
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2)
            sock.connect(str(self.socket_path))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        rows = csv.DictReader(io.StringIO(data.decode().lstrip("# ")))
        return {
            row["svname"]: row["status"].split()[0]
            for row in rows
            if row.get("pxname") == "replicas" and row["svname"] in self.names()
        }

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        (self.run_dir / "pids" / "haproxy.pid").unlink(missing_ok=True)


class Cluster:
    """The store, N replicas sharing it, and haproxy in front."""

    def __init__(
        self,
        run_dir: Path,
        module: str,
        store: StoreServer,
        haproxy: str,
        env: Mapping[str, str],
        replica_env: list[Mapping[str, str | None]],
        size: int = 3,
    ) -> None:
        (run_dir / "pids").mkdir(parents=True, exist_ok=True)
        (run_dir / "logs").mkdir(exist_ok=True)
        self.run_dir = run_dir
        self.store = store
        self.replicas = []
        for index in range(size):
            port, admin_port = free_port(), free_port()
            merged: dict[str, str | None] = {
                **env,
                "PORT": str(port),
                "ADMIN_PORT": str(admin_port),
            }
            if index < len(replica_env):
                merged.update(replica_env[index])
            clean = {k: v for k, v in merged.items() if v is not None}
            self.replicas.append(Replica(f"r{index + 1}", port, admin_port, clean, run_dir, module))
        self.balancer = LoadBalancer(run_dir, self.replicas, haproxy)
        atexit.register(_kill_pidfiles, run_dir / "pids")

    def start(self) -> None:
        for replica in self.replicas:  # all at once: they start in parallel
            replica.start()
        for replica in self.replicas:
            wait_until(replica.ready, timeout=60)
        self.balancer.start()

    def stop(self) -> None:
        self.balancer.stop()
        for replica in self.replicas:
            replica.kill()
        _kill_pidfiles(self.run_dir / "pids")

    def wait_in_rotation(self, replica: Replica, timeout: float = 20) -> None:
        wait_until(lambda: self.balancer.server_states().get(replica.name) == "UP", timeout)

    def restart(self, replica: Replica) -> int:
        """What a rolling update does to one pod: SIGTERM (readiness turns 503 and haproxy
        takes the replica out while it drains), exit, a new process, ready, back in rotation."""
        code = replica.terminate()
        replica.start()
        wait_until(replica.ready, timeout=60)
        self.wait_in_rotation(replica)
        return code


@dataclass
class LoadResult:
    sent: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


def steady_load(
    url: str,
    until: Callable[[], bool],
    rate: float = 60.0,
    headers: Mapping[str, str] | None = None,
    max_seconds: float = 120.0,
) -> LoadResult:
    """GET url at a fixed rate until ``until()`` is true (bounded by max_seconds)."""
    result = LoadResult()
    interval = 1.0 / rate
    start = time.monotonic()
    with httpx2.Client(timeout=5, headers=dict(headers or {}), verify=TLS_CONTEXT) as client:
        next_at = start
        while not until() and time.monotonic() - start < max_seconds:
            result.sent += 1
            try:
                response = client.get(url)
                if response.status_code != 200:
                    result.failed += 1
                    result.failures.append(f"HTTP {response.status_code}")
            except httpx2.TransportError as exc:
                result.failed += 1
                result.failures.append(type(exc).__name__)
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
    result.seconds = time.monotonic() - start
    return result
