"""Several server processes in one container (``WEB_CONCURRENCY`` > 1): the supervisor.

The supervisor binds the sockets, starts the processes (each a whole server: its own event loop,
application, pools and drain, on the shared sockets; the kernel hands each new connection to
one of them), and then only watches:

- SIGTERM or SIGINT is passed to every process, which drains exactly as a single server does
  (``server.DrainingServer``); the supervisor exits once all have, 0 when all ended cleanly.
- A process that ends on its own after it started serving is replaced at once (the sockets stay
  open in the supervisor, so nothing is refused meanwhile).
- A process whose event loop stops running (a handler blocking it, a deadlock) is killed after
  ``WEB_PROCESS_TIMEOUT_SECONDS`` and replaced: each process's loop writes a heartbeat every
  second, and the liveness probe cannot tell, as it reaches one process of several.
- A process that ends before it started serving (a refused setting, a dependency that fails the
  application's start) stops the others: the same failure would repeat, and the platform should
  see the container fail. The supervisor exits with that process's exit code.

Processes are started with ``spawn``, never ``fork``: a fresh interpreter reads the settings and
opens its own connections, and no lock or thread of the supervisor is copied half-held.
"""

import asyncio
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path
from socket import socket
from types import FrameType

from .observability.logs import get_logger
from .observability.metrics import MULTIPROCESS_DIRECTORY

logger = get_logger(__name__)

ProcessTarget = Callable[[list[socket], Callable[[], None]], int]
"""Runs one server on the sockets, calls its second argument once it serves, returns the exit
code. Must be picklable (a module-level function, or a ``functools.partial`` of one)."""

SPAWN = multiprocessing.get_context("spawn")
# A process ended by the signal it was passed during the shutdown ended cleanly.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
POLL_SECONDS = 0.5
HEARTBEAT_SECONDS = 1.0


def _process_main(
    target: ProcessTarget, sockets: list[socket], started: Event, heartbeat: "Synchronized[float]"
) -> None:
    def on_started() -> None:
        # Called on the server's event loop once it serves: from now on the loop beats.
        _beat(asyncio.get_running_loop(), heartbeat)
        started.set()

    raise SystemExit(target(sockets, on_started))


def _beat(loop: asyncio.AbstractEventLoop, heartbeat: "Synchronized[float]") -> None:
    heartbeat.value = time.monotonic()  # one clock for every process of the machine
    loop.call_later(HEARTBEAT_SECONDS, _beat, loop, heartbeat)


@dataclass
class ServerProcess:
    process: BaseProcess
    started: Event
    heartbeat: "Synchronized[float]"
    killed: bool = False

    def stalled_for(self) -> float:
        """Seconds since its event loop last ran (0 before it started serving)."""
        if not self.started.is_set():
            return 0.0
        return time.monotonic() - self.heartbeat.value

    @property
    def pid(self) -> int:
        return self.process.pid or 0


@dataclass
class Supervisor:
    count: int
    target: ProcessTarget
    sockets: list[socket]
    timeout_seconds: float = 30.0
    processes: list[ServerProcess] = field(default_factory=list)
    stopping: bool = False
    exit_code: int = 0
    _signals: list[int] = field(default_factory=list)
    # Written by the signal handler so the loop's wait returns at once.
    _wakeup: tuple[int, int] = field(default_factory=os.pipe)

    def run(self) -> int:
        """Start the processes and supervise them until they have all ended; the exit code."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_signal)
        for _ in range(self.count):
            self.processes.append(self._start())
        logger.info("server processes started", processes=self.count, supervisor=os.getpid())
        try:
            while self.processes:
                self._pass_signals()
                sentinels = [server.process.sentinel for server in self.processes]
                ready = multiprocessing.connection.wait(
                    [*sentinels, self._wakeup[0]], timeout=POLL_SECONDS
                )
                if self._wakeup[0] in ready:
                    os.read(self._wakeup[0], 64)
                self._kill_stalled()
                for server in [s for s in self.processes if not s.process.is_alive()]:
                    self.processes.remove(server)
                    self._ended(server)
        finally:
            os.close(self._wakeup[0])
            os.close(self._wakeup[1])
        return self.exit_code

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self._signals.append(sig)  # passed on by the loop, outside the signal handler
        os.write(self._wakeup[1], b"!")

    def _pass_signals(self) -> None:
        while self._signals:
            sig = self._signals.pop(0)
            if not self.stopping:
                logger.info("shutdown requested, passing it to the server processes", signal=sig)
            self.stopping = True
            self._signal_all(sig)

    def _kill_stalled(self) -> None:
        if self.stopping:
            return  # a drain ends on its own, within the grace time the platform enforces
        for server in self.processes:
            stalled = server.stalled_for()
            if stalled > self.timeout_seconds and not server.killed:
                logger.error(
                    "server process stopped running its event loop, killing it",
                    pid=server.pid,
                    stalled_seconds=round(stalled, 1),
                    timeout_seconds=self.timeout_seconds,
                )
                os.kill(server.pid, signal.SIGKILL)
                server.killed = True  # ended (and replaced) when the loop sees it exit

    def _signal_all(self, sig: int) -> None:
        for server in self.processes:
            if server.process.is_alive():
                os.kill(server.pid, sig)

    def _start(self) -> ServerProcess:
        started = SPAWN.Event()
        heartbeat = SPAWN.Value("d", 0.0, lock=False)
        process = SPAWN.Process(
            target=_process_main,
            args=(self.target, self.sockets, started, heartbeat),
            name="server",
        )
        process.start()
        return ServerProcess(process, started, heartbeat)

    def _ended(self, server: ServerProcess) -> None:
        code = server.process.exitcode or 0
        forget_process_metrics(server.pid)
        if self.stopping:
            if code != 0 and -code not in STOP_SIGNALS:
                logger.error("server process ended with an error", pid=server.pid, exit_code=code)
                self.exit_code = self.exit_code or 1
            return
        if not server.started.is_set():
            logger.error(
                "server process ended before it started serving, stopping the others",
                pid=server.pid,
                exit_code=code,
            )
            self.exit_code = code if code > 0 else 1
            self.stopping = True
            self._signal_all(signal.SIGTERM)
            return
        logger.error(
            "server process ended unexpectedly, starting another", pid=server.pid, exit_code=code
        )
        self.processes.append(self._start())


def forget_process_metrics(pid: int) -> None:
    """Drop the live-only gauges of an ended process (its counters still count)."""
    if os.environ.get(MULTIPROCESS_DIRECTORY):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def metrics_directory() -> tuple[Path, bool]:
    """The directory the processes keep their metrics in, emptied, and whether it is ours to
    remove at exit: PROMETHEUS_MULTIPROC_DIR if set, else a new one under the temporary
    directory (``/tmp``, writable in the container). Set in the environment the processes get."""
    configured = os.environ.get(MULTIPROCESS_DIRECTORY)
    if configured:
        directory = Path(configured)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):  # a previous run's samples are not this run's
            stale.unlink()
        return directory, False
    directory = Path(tempfile.mkdtemp(prefix="metrics-"))
    os.environ[MULTIPROCESS_DIRECTORY] = str(directory)
    return directory, True


def supervise(
    count: int, target: ProcessTarget, sockets: list[socket], timeout_seconds: float
) -> int:
    """Run ``count`` server processes on ``sockets`` until they have all ended, replacing any
    whose event loop stalls for ``timeout_seconds``."""
    directory, owned = metrics_directory()
    try:
        return Supervisor(count, target, sockets, timeout_seconds).run()
    finally:
        if owned:
            shutil.rmtree(directory, ignore_errors=True)
