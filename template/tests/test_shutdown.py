"""Graceful shutdown of a real server process: SIGTERM with a slow request in flight."""

import json
import signal
import threading
import time
from collections.abc import Callable

import httpx2

from .support.server import TLS_CONTEXT, ServerProcess, wait_until

DRAIN_SECONDS = 1.0
# In flight across the whole drain: the response comes after the drain ended.
SLOW_SECONDS = DRAIN_SECONDS + 0.5


def slow_request_arrived(server: ServerProcess) -> bool:
    return bool(server.get("/slow/in-flight").json()["in_flight"] == 1)


def test_sigterm_drains_finishes_in_flight_requests_and_exits_zero(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(SHUTDOWN_DRAIN_SECONDS=str(DRAIN_SECONDS), SHUTDOWN_GRACE_SECONDS="15")
    slow_result: dict[str, httpx2.Response] = {}

    def slow_request() -> None:
        slow_result["response"] = server.get("/slow", params={"seconds": SLOW_SECONDS})

    in_flight = threading.Thread(target=slow_request)
    in_flight.start()
    wait_until(lambda: slow_request_arrived(server), timeout=10)
    server.process.send_signal(signal.SIGTERM)
    signalled_at = time.monotonic()

    # Readiness turns 503 at once, while the process keeps serving other requests.
    wait_until(lambda: server.get("/readyz").status_code == 503, timeout=5)
    during_drain = server.get("/")
    assert during_drain.status_code == 200
    assert during_drain.headers["connection"] == "close"
    assert time.monotonic() - signalled_at < DRAIN_SECONDS, "drain ended before the checks ran"

    in_flight.join(timeout=30)
    assert slow_result["response"].status_code == 200
    assert slow_result["response"].json() == {"slept": SLOW_SECONDS}

    assert server.process.wait(timeout=30) == 0
    lines = [json.loads(line) for line in server.output().splitlines() if line.strip()]
    events = [line["event"] for line in lines]
    assert "shutdown requested, draining" in events
    assert "stopped" in events


def test_connections_are_accepted_during_the_drain_and_refused_after_exit(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(SHUTDOWN_DRAIN_SECONDS=str(DRAIN_SECONDS), SHUTDOWN_GRACE_SECONDS="5")
    server.process.send_signal(signal.SIGTERM)
    server.process.send_signal(signal.SIGTERM)  # a repeated SIGTERM must not cut the drain short
    # Halfway through the drain: no event to wait for, the point is how long it lasts.
    time.sleep(DRAIN_SECONDS / 2)
    assert server.get("/livez").status_code == 200
    assert server.process.wait(timeout=30) == 0
    try:
        server.get("/livez")
    except httpx2.ConnectError:
        pass
    else:
        raise AssertionError("server still accepted connections after exiting")


def test_sigint_skips_the_drain(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(SHUTDOWN_DRAIN_SECONDS="60", SHUTDOWN_GRACE_SECONDS="5")
    server.process.send_signal(signal.SIGINT)
    # With a 60 s drain, only skipping it lets the process exit within this bound.
    assert server.process.wait(timeout=30) == 0


def test_sigterm_loses_no_log_line(start_server: Callable[..., ServerProcess]) -> None:
    """Lines are written by a thread from a queue: on SIGTERM the queue is written out first.

    Nothing reads the server's stdout until the signal, so the pipe fills and most access lines
    are still queued inside the process when SIGTERM arrives.
    """
    requests = 600
    server = start_server()
    request_ids = {f"loss-{number}" for number in range(requests)}
    with httpx2.Client(base_url=server.base_url, timeout=10, verify=TLS_CONTEXT) as client:
        for request_id in sorted(request_ids):
            assert client.get("/", headers={"X-Request-ID": request_id}).status_code == 200
    server.process.send_signal(signal.SIGTERM)
    output = server.output()
    assert server.process.returncode == 0
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    access_ids = {line["request_id"] for line in lines if line["event"] == "request"}
    assert access_ids == request_ids
    assert lines[-1]["event"] == "stopped"
