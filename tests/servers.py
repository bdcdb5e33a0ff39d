"""Start a server process for a test and wait until it is ready: the one helper behind every server
the template's own tests start (HAProxy in test_compose_balancer.py; redis and moto in
test_container_image.py). A server that exits before it is ready fails the test with its output,
instead of a timeout."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

import pytest

POLL_SECONDS = 0.05


# Listening ports come from below the kernel's ephemeral range, which every outgoing connection
# draws from: a port picked there can be taken by a client socket before the server binds it.
LISTEN_PORTS = range(20000, 32768)
_pick = random.SystemRandom()


_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on, outside the range outgoing connections draw from.

    Never the same port twice in one process (two picks made before either server binds), and
    pytest-xdist workers draw from disjoint slices of the range.
    """
    try:
        ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = LISTEN_PORTS.stop
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(worker.removeprefix("gw")) if worker.startswith("gw") else 0
    ports = range(LISTEN_PORTS.start, min(LISTEN_PORTS.stop, ephemeral))[index % count :: count]
    for _ in range(200):
        port = _pick.choice(ports) if ports else 0
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            chosen = int(s.getsockname()[1])
        _handed_out.add(chosen)
        return chosen
    raise AssertionError(f"no free port in {ports}")


def accepts_connections(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def answers_http(url: str) -> bool:
    """Any HTTP answer, an error status included: the server is up."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def wait_until(
    condition: Callable[[], object],
    what: str,
    timeout: float = 20.0,
    process: subprocess.Popen[bytes] | None = None,
    output: IO[bytes] | None = None,
) -> None:
    """Poll `condition` until it is true; fail the test after `timeout` seconds, or as soon as
    `process` (the server that should make it true) has exited."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            pytest.fail(f"{what}: the server exited ({process.returncode}) {_tail(output)}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what} ({timeout:g} s) {_tail(output)}")
        time.sleep(POLL_SECONDS)


@contextlib.contextmanager
def running(
    command: Sequence[str],
    ready: Callable[[], object],
    what: str,
    *,
    timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `command`, wait until `ready()`, yield the process; terminate it on the way out."""
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            list(command), stdout=output, stderr=subprocess.STDOUT, env=env and dict(env)
        )
        try:
            wait_until(ready, what, timeout, process, output)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _tail(output: IO[bytes] | None) -> str:
    if output is None:
        return ""
    output.seek(0)
    return output.read()[-2000:].decode(errors="replace")
