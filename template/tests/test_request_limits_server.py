"""Request bounds on the real server, for each parser uvicorn can use: a 100 MB header, 20,000
headers, a 300 MiB body (declared or chunked) are refused, and the replica's peak memory grows by
about the limits, not by the size of the attack."""

import os
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support.server import ServerProcess, free_port, wait_until

pytestmark = pytest.mark.processes

SERVICE = Path(__file__).parent / "support" / "slow_service.py"
MIB = 1024 * 1024
ATTACK_BODY = 300 * MIB
ATTACK_HEADER = 100 * 1000 * 1000
# Peak memory may grow by the limits (16 KiB head, 1 MiB body), buffers and allocator slack;
# without the limits these attacks grow it by hundreds of megabytes.
PEAK_GROWTH_BUDGET = 48 * MIB
# Peak memory (VmHWM) of each server once started and warmed up, by process ID.
BASELINE: dict[int, int] = {}


@pytest.fixture(scope="module", params=["httptools", "h11"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One service process per parser, shared by this module's checks."""
    workdir = tmp_path_factory.mktemp("limits")
    (workdir / "secrets").mkdir()
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        # A free internal port too: the default one is shared by every process on the machine.
        "ADMIN_PORT": str(free_port()),
        "HOST": "127.0.0.1",
        "HTTP_PARSER": request.param,
        "SECRETS_DIR": str(workdir / "secrets"),
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, str(SERVICE)],
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    server = ServerProcess(process, f"http://127.0.0.1:{port}")
    try:
        wait_until(server.started)
        server.get("/")  # warm up: the first request imports and allocates what later ones reuse
        BASELINE[process.pid] = peak_rss(server)
        yield server
    finally:
        process.kill()
        process.wait(timeout=10)


def peak_rss(server: ServerProcess) -> int:
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def assert_peak_bounded(server: ServerProcess, attack_name: str) -> None:
    baseline = BASELINE[server.process.pid]
    growth = peak_rss(server) - baseline
    print(f"{attack_name}: peak RSS {baseline / MIB:.0f} MiB + {growth / MIB:.1f} MiB")
    assert growth < PEAK_GROWTH_BUDGET, f"{attack_name} grew peak memory by {growth} bytes"


def attack(server: ServerProcess, head: bytes, filler: bytes, total: int) -> bytes:
    """Send ``head`` then ``filler`` until ``total`` bytes or until the server answers; return
    the status line of the answer."""
    host, port = server.base_url.removeprefix("http://").split(":")
    answer = b""
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        try:
            connection.sendall(head)
            sent = len(head)
            while sent < total and not select.select([connection], [], [], 0)[0]:
                connection.sendall(filler)
                sent += len(filler)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while b"\r\n" not in answer:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                answer += chunk
        except ConnectionResetError:
            pass
    return answer.split(b"\r\n", 1)[0]


def chunked(size: int) -> bytes:
    return f"{size:x}\r\n".encode() + b"x" * size + b"\r\n"


def test_huge_and_numerous_headers_are_refused_with_431(server: ServerProcess) -> None:
    head = b"GET / HTTP/1.1\r\nHost: test\r\nX-Big: "
    assert attack(server, head, b"a" * 65536, ATTACK_HEADER).startswith(b"HTTP/1.1 431")

    many = b"GET / HTTP/1.1\r\nHost: test\r\n" + b"".join(
        b"X-H%d: v\r\n" % index for index in range(20_000)
    )
    assert attack(server, many + b"\r\n", b"", 0).startswith(b"HTTP/1.1 431")
    assert server.get("/").status_code == 200
    assert_peak_bounded(server, "100 MB header, 20,000 headers")


def test_bodies_over_the_limit_are_refused_with_413(server: ServerProcess) -> None:
    login = b"POST /session/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
    declared = login + b"Content-Length: %d\r\n\r\n" % ATTACK_BODY
    assert attack(server, declared, b"x" * 65536, ATTACK_BODY).startswith(b"HTTP/1.1 413")

    streamed = login + b"Transfer-Encoding: chunked\r\n\r\n"
    assert attack(server, streamed, chunked(65536), ATTACK_BODY).startswith(b"HTTP/1.1 413")
    assert server.get("/").status_code == 200
    assert_peak_bounded(server, "300 MiB body, declared and chunked")


def test_invented_methods_reach_the_application_only_as_requests_to_refuse(
    server: ServerProcess,
) -> None:
    """h11 passes any method token to the application (httptools refuses unknown ones): the
    metrics label them OTHER (see test_request_limits.py)."""
    status = attack(server, b"INVENTED1 / HTTP/1.1\r\nHost: test\r\n\r\n", b"", 0)
    assert status.split(b" ")[1] in {b"400", b"405"}
