"""The jobs this service schedules, what a running job sees, and how ticks are named.

A job is an async function taking a ``JobContext``. It must be idempotent per tick: its effect is
written together with ``ctx.idempotency_key`` (and refused for a key that already has one), and
it calls ``ctx.checkpoint()`` between steps, where it stops when its lock was lost or the
process is shutting down.

Jobs are discovered like commands: every module of ``jobs/scheduled/`` is imported by
``discover_jobs()`` and registers its job, so adding a job never edits a template-owned file.

Schedules are intervals counted from the Unix epoch in UTC, so every replica, beat or CronJob
names the same tick the same way whatever its start time or local time zone.
"""

import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from ..locks.guard import HeldLock
from .ledger import JobLedger


class JobStopped(Exception):
    """The process is shutting down: the job stopped at a safe point, to run again next tick."""


@dataclass
class JobContext:
    job: str
    idempotency_key: str
    scheduled_for: datetime
    lock: HeldLock
    ledger: JobLedger
    should_stop: Callable[[], bool]

    @property
    def fencing_token(self) -> int:
        return self.lock.fencing_token

    def checkpoint(self) -> None:
        """A safe point: raise LockLost or JobStopped instead of carrying on."""
        self.lock.ensure_held()
        if self.should_stop():
            raise JobStopped(f"job {self.job!r} stopped: shutting down")


JobFunction = Callable[[JobContext], Awaitable[dict[str, object]]]


@dataclass(frozen=True)
class Job:
    name: str
    interval_seconds: float
    function: JobFunction
    description: str


REGISTRY: dict[str, Job] = {}


def register(
    name: str, interval_seconds: float, description: str
) -> Callable[[JobFunction], JobFunction]:
    """Decorator adding a job to the registry under ``name``."""

    def add(function: JobFunction) -> JobFunction:
        REGISTRY[name] = Job(name, interval_seconds, function, description)
        return function

    return add


def discover_jobs() -> dict[str, Job]:
    """Import every module of ``jobs/scheduled/`` (each registers its job); the registry."""
    # Imported here, not at the top: the job modules import this module for ``register``.
    from . import scheduled

    for info in pkgutil.iter_modules(scheduled.__path__):
        importlib.import_module(f"{scheduled.__name__}.{info.name}")
    return REGISTRY


def tick_for(now: datetime, interval_seconds: float) -> datetime:
    """The tick ``now`` belongs to: the nearest multiple of the interval since the epoch (UTC).

    Nearest rather than previous, so a replica firing a little early or late names the same
    tick as the others.
    """
    seconds = now.timestamp()
    tick = round(seconds / interval_seconds) * interval_seconds
    return datetime.fromtimestamp(tick, tz=UTC)


def previous_tick(now: datetime, interval_seconds: float) -> datetime:
    """The last tick at or before ``now`` (for a command started by an outside scheduler)."""
    seconds = now.timestamp()
    return datetime.fromtimestamp(seconds - seconds % interval_seconds, tz=UTC)


def idempotency_key(job: str, scheduled_for: datetime) -> str:
    stamp = scheduled_for.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{job}@{stamp}"
