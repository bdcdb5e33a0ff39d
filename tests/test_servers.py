"""The start-and-wait helper behind every server the template's own tests start."""

from __future__ import annotations

import shutil
import sys

import pytest
from servers import accepts_connections, free_port, running

pytestmark = [pytest.mark.tier1, pytest.mark.fast]


def test_a_server_that_exits_fails_at_once_with_its_output() -> None:
    """No waiting out the timeout for a server that already died: the failure names its exit
    status and shows what it printed."""
    command = [sys.executable, "-c", "import sys; print('port in use'); sys.exit(3)"]
    with (
        pytest.raises(pytest.fail.Exception, match=r"(?s)exited \(3\).*port in use"),
        running(command, lambda: False, "the server is ready", timeout=600),
    ):
        pass


def test_a_server_never_ready_times_out() -> None:
    command = [sys.executable, "-c", "import time; time.sleep(60)"]
    with (
        pytest.raises(pytest.fail.Exception, match="timed out waiting until it is ready"),
        running(command, lambda: False, "it is ready", timeout=0.2),
    ):
        pass


def test_the_server_is_ready_inside_and_stopped_after() -> None:
    redis = shutil.which("redis-server")
    if redis is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    command = [redis, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    with running(command, lambda: accepts_connections(port), "redis accepts") as process:
        assert accepts_connections(port)
    assert process.returncode is not None
    assert not accepts_connections(port)


def test_listening_ports_are_picked_outside_the_ephemeral_range() -> None:
    """Outgoing connections take ephemeral ports: a server port picked there can be lost to a
    client socket before the server binds it."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
        ephemeral_start = int(ports.read().split()[0])
    picked = {free_port() for _ in range(50)}
    assert max(picked) < ephemeral_start, sorted(picked)
    assert len(picked) > 40
