"""Run one tick of one job, once across every replica.

1. Take the job's lock (never wait: if another replica holds it, this tick is theirs).
2. Under the lock, look up the tick's idempotency key: a key whose run succeeded is done.
3. Record the run as running, run the job while the lease is renewed, record how it ended.
4. Release the lock (owner-checked).

A second start of the same tick (a replica firing late, a CronJob started twice, a manual
trigger) finds the lock busy or the key done. A holder that loses its lock stops at its next
checkpoint; its effect, written with the idempotency key and fencing token, cannot land twice.
"""

import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from ..locks import LockBackend, LockLost, LockUnavailable
from ..locks.guard import hold
from ..observability.logs import get_logger
from .ledger import JobLedger, RunRecord, RunStatus
from .registry import Job, JobContext, JobStopped, idempotency_key

logger = get_logger(__name__)


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    LOCK_LOST = "lock_lost"
    INTERRUPTED = "interrupted"
    ALREADY_DONE = "already_done"
    BUSY = "busy"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class RunResult:
    outcome: Outcome
    idempotency_key: str
    record: RunRecord | None = None


class JobRunner:
    def __init__(
        self,
        locks: LockBackend,
        ledger: JobLedger,
        namespace: str,
        ttl_seconds: float,
        renew_interval: float,
        should_stop: Callable[[], bool] = lambda: False,
        after_run: Sequence[Callable[[], Awaitable[object]]] = (),
    ) -> None:
        self.locks = locks
        self.ledger = ledger
        self.namespace = namespace
        self.ttl_seconds = ttl_seconds
        self.renew_interval = renew_interval
        self.should_stop = should_stop
        # Awaited after every run, whatever its outcome: what a run's code may leave open.
        self.after_run = tuple(after_run)

    def lock_name(self, job: str) -> str:
        return f"{self.namespace}:jobs:{job}"

    async def run(self, job: Job, scheduled_for: datetime, key: str | None = None) -> RunResult:
        key = key or idempotency_key(job.name, scheduled_for)
        try:
            return await self._run(job, scheduled_for, key)
        except LockUnavailable as exc:
            logger.error(
                "job not run: lock backend unavailable",
                job=job.name,
                idempotency_key=key,
                error=str(exc),
            )
            return RunResult(Outcome.UNAVAILABLE, key)
        finally:
            for tidy in self.after_run:
                try:
                    await tidy()
                except Exception:  # like a failing job, it must not take the scheduler down
                    logger.exception("tidying after the run failed", job=job.name)

    async def _run(self, job: Job, scheduled_for: datetime, key: str) -> RunResult:
        bound = logger.bind(job=job.name, idempotency_key=key)
        began = time.monotonic()
        async with hold(
            self.locks, self.lock_name(job.name), self.ttl_seconds, self.renew_interval
        ) as held:
            if held is None:
                bound.info("job skipped: another replica holds its lock")
                return RunResult(Outcome.BUSY, key)
            previous = await self.ledger.get_run(key)
            if previous is not None and previous.status is RunStatus.SUCCEEDED:
                bound.info("job skipped: this tick already ran", fencing_token=held.fencing_token)
                return RunResult(Outcome.ALREADY_DONE, key, previous)
            record = RunRecord(
                job=job.name,
                idempotency_key=key,
                scheduled_for=scheduled_for,
                status=RunStatus.RUNNING,
                owner=secrets.token_hex(8),
                fencing_token=held.fencing_token,
                started_at=datetime.now(UTC),
            )
            await self.ledger.save_run(record)
            bound.info("job started", fencing_token=held.fencing_token)
            context = JobContext(job.name, key, scheduled_for, held, self.ledger, self.should_stop)
            try:
                record.result = await job.function(context)
                record.status = RunStatus.SUCCEEDED
            except LockLost as exc:
                record.status, record.error = RunStatus.LOCK_LOST, str(exc)
            except JobStopped as exc:
                record.status, record.error = RunStatus.INTERRUPTED, str(exc)
            except Exception as exc:  # a failing job must not take the scheduler down
                record.status, record.error = RunStatus.FAILED, f"{type(exc).__name__}: {exc}"
                bound.exception("job failed")
            record.finished_at = datetime.now(UTC)
            duration_ms = round((time.monotonic() - began) * 1000, 2)
            if record.status is RunStatus.LOCK_LOST:
                # Another holder may own the tick now: leave its record alone.
                bound.error("job stopped: lock lost", error=record.error, duration_ms=duration_ms)
            else:
                await self.ledger.save_run(record)
                bound.info(
                    "job finished",
                    status=str(record.status),
                    result=record.result,
                    renewals=held.renewals,
                    duration_ms=duration_ms,
                )
            return RunResult(Outcome(str(record.status)), key, record)
