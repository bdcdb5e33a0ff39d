"""The in-process scheduler: every replica runs APScheduler 3, the job lock picks one per tick.

Each job fires on an interval counted from the Unix epoch in UTC, so all replicas fire at the
same instants and name the tick the same way; the first to take the lock runs it, the others
find the lock busy or the tick done. ``max_instances=1`` and ``coalesce`` keep one process from
stacking runs of its own when a run is slow.

On SIGTERM the server starts draining: no new tick starts, and a running job stops at its next
checkpoint (``should_stop``); ``stop`` then waits for it, releasing its lock.
"""

import asyncio
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from ..observability.logs import get_logger
from .registry import REGISTRY, Job, tick_for
from .runtime import JobsRuntime

logger = get_logger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class InProcessScheduler:
    def __init__(self, runtime: JobsRuntime) -> None:
        self.runtime = runtime
        self._scheduler: AsyncIOScheduler | None = None
        self._running: set[asyncio.Task[object]] = set()
        self._stopping = False

    def start(self) -> None:
        scheduler = AsyncIOScheduler(timezone=UTC)
        for job in REGISTRY.values():
            interval = self.runtime.interval(job)
            scheduler.add_job(
                self._fire,
                IntervalTrigger(seconds=interval, start_date=EPOCH, timezone=UTC),
                args=[job.name],
                id=job.name,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(interval / 2)),
            )
        scheduler.start()
        self._scheduler = scheduler
        logger.info(
            "scheduler started",
            jobs={job.name: self.runtime.interval(job) for job in REGISTRY.values()},
        )

    async def _fire(self, name: str) -> None:
        if self._stopping or self.runtime.runner.should_stop():
            return
        job: Job = REGISTRY[name]
        scheduled_for = tick_for(datetime.now(UTC), self.runtime.interval(job))
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            await self.runtime.runner.run(job, scheduled_for)
        finally:
            if task is not None:
                self._running.discard(task)

    async def stop(self, wait_seconds: float) -> None:
        """Stop firing; wait up to ``wait_seconds`` for running jobs to reach a checkpoint."""
        self._stopping = True
        scheduler = self._scheduler
        # Pause, not shut down, first: APScheduler's shutdown cancels the tasks of running
        # jobs, which would interrupt a job mid-write instead of at its checkpoint.
        if scheduler is not None and scheduler.running:
            scheduler.pause()
        # A tick APScheduler submitted just now is a task that has not started yet: let it
        # start (it returns at once, seeing _stopping).
        await asyncio.sleep(0)
        running = list(self._running)
        if running:
            logger.info("waiting for running jobs to stop", jobs=len(running))
            _, pending = await asyncio.wait(running, timeout=wait_seconds)
            for task in pending:
                task.cancel()
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
        logger.info("scheduler stopped")
