"""Celery: a worker runs the jobs, one beat sends them, RedBeat keeps the beat single.

- ``python -m <package> celery-worker``: consumes the ``run_job`` task; each run still takes the
  job lock and its idempotency key, so a task delivered twice (a worker lost mid-task and the
  message redelivered: ``acks_late``) has one effect.
- ``python -m <package> celery-beat``: RedBeat stores the schedule in Redis and holds a lock
  there; a second beat (a rolling update, a duplicate Deployment) waits idle until the lock's
  ``CELERY_BEAT_LOCK_TIMEOUT_SECONDS`` runs out after the first one dies.

The tick is stamped on the message when the beat publishes it (``before_task_publish``), so the
worker names the tick the beat meant, however late it picks the task up.
"""

import asyncio
from datetime import UTC, datetime
from typing import Any, Self

from celery import Celery, Task
from celery.signals import before_task_publish
from pydantic import Field

from .. import SERVICE_NAME
from ..config import ConfigError, Credential, EnvironmentSettings, Settings, load_settings
from ..observability.logs import get_logger
from .registry import REGISTRY, tick_for
from .runtime import check_intervals, open_jobs
from .settings import JobsSettings

logger = get_logger(__name__)

RUN_JOB_TASK = f"{SERVICE_NAME}.run_job"


class CelerySettings(EnvironmentSettings):
    # The broker (Redis/Valkey). Unset: the lock URL (LOCK_URL, else STORE_URL).
    celery_broker_url: Credential = None
    # How long a dead beat keeps the beat lock: the longest gap between two beats' schedules.
    celery_beat_lock_timeout_seconds: int = Field(default=60, ge=2)
    # How often the beat wakes up at most (and renews its lock): well below the lock timeout.
    celery_beat_max_loop_interval_seconds: float = Field(default=5.0, gt=0)
    # Tasks one worker process runs at once.
    celery_worker_concurrency: int = Field(default=2, ge=1, le=64)

    @classmethod
    def load(cls, settings: Settings, jobs: JobsSettings | None = None) -> Self:
        """Read the Celery settings (``jobs``: the jobs' settings, read here when not given).

        The broker is checked in production; in development only the worker and the beat need
        one (``require_broker``), so the web service still starts on embedded defaults.
        """
        celery = cls.from_environment()
        jobs = jobs if jobs is not None else JobsSettings.from_environment()
        problems: list[str] = []
        loop = celery.celery_beat_max_loop_interval_seconds
        if loop * 2 > celery.celery_beat_lock_timeout_seconds:
            problems.append(
                "CELERY_BEAT_MAX_LOOP_INTERVAL_SECONDS must be at most half of "
                "CELERY_BEAT_LOCK_TIMEOUT_SECONDS, or the beat lock expires between renewals"
            )
        if settings.is_production:
            problems += celery.broker_problems(settings, jobs)
        if problems:
            raise ConfigError(problems)
        return celery

    def broker_problems(self, settings: Settings, jobs: JobsSettings) -> list[str]:
        broker = self.broker_url(settings, jobs)
        if broker.split("://", 1)[0] in {"redis", "rediss", "valkey", "valkeys"}:
            return []
        return [
            "CELERY_BROKER_URL must be a redis:// or valkey:// URL (unset: LOCK_URL, else "
            "STORE_URL); it is also where RedBeat keeps the schedule and the beat lock"
        ]

    def broker_url(self, settings: Settings, jobs: JobsSettings) -> str:
        if self.celery_broker_url is not None and self.celery_broker_url.get_secret_value():
            url = self.celery_broker_url.get_secret_value()
        else:
            url = jobs.resolved_lock_url(settings)
        # Celery and RedBeat speak redis://; Valkey is the same protocol.
        return "redis" + url.removeprefix("valkey") if url.startswith("valkey") else url


def create_celery(settings: Settings, jobs: JobsSettings, celery: CelerySettings) -> Celery:
    check_intervals(jobs)
    broker = celery.broker_url(settings, jobs)
    app = Celery(SERVICE_NAME, broker=broker, set_as_current=True)
    app.conf.update(
        timezone="UTC",
        enable_utc=True,
        task_ignore_result=True,  # run status lives in the job ledger (GET /jobs/{name})
        task_acks_late=True,  # a worker lost mid-task gets the task redelivered...
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # ...and the lock plus idempotency key make that safe
        worker_hijack_root_logger=False,  # JSON logs as configured by the service
        worker_concurrency=celery.celery_worker_concurrency,
        broker_connection_retry_on_startup=True,
        beat_scheduler="redbeat.RedBeatScheduler",
        beat_max_loop_interval=celery.celery_beat_max_loop_interval_seconds,
        redbeat_redis_url=broker,
        redbeat_key_prefix=f"{settings.key_namespace}:redbeat:",
        redbeat_lock_key=f"{settings.key_namespace}:redbeat:lock",
        redbeat_lock_timeout=celery.celery_beat_lock_timeout_seconds,
        beat_schedule={
            job.name: {
                "task": RUN_JOB_TASK,
                "schedule": jobs.jobs_intervals.get(job.name, job.interval_seconds),
                "args": (job.name,),
            }
            for job in REGISTRY.values()
        },
    )

    def run_job(task: Task, name: str, scheduled_for: str | None = None) -> str:
        job = REGISTRY.get(name)
        if job is None:
            logger.error("unknown job in task", job=name)
            return "unknown"
        tick = datetime.fromisoformat(scheduled_for) if scheduled_for else datetime.now(UTC)

        async def run_once() -> str:
            runtime = open_jobs(settings, jobs)
            try:
                result = await runtime.runner.run(job, tick)
            finally:
                await runtime.close()
            return str(result.outcome)

        return asyncio.run(run_once())

    app.task(name=RUN_JOB_TASK, bind=True)(run_job)
    return app


def stamp_tick(sender: str | None = None, body: Any = None, **_: object) -> None:
    """Name the tick at publish time (in the beat), so a late worker names the same tick."""
    if sender != RUN_JOB_TASK or not isinstance(body, tuple) or len(body) < 2:
        return
    args, kwargs = body[0], body[1]
    if not args or not isinstance(kwargs, dict) or "scheduled_for" in kwargs:
        return
    job = REGISTRY.get(str(args[0]))
    if job is None:
        return
    jobs = JobsSettings.from_environment()
    interval = jobs.jobs_intervals.get(job.name, job.interval_seconds)
    kwargs["scheduled_for"] = tick_for(datetime.now(UTC), interval).isoformat()


before_task_publish.connect(stamp_tick, weak=False)


def require_broker(settings: Settings) -> None:
    """The worker's and the beat's own start-up check: a broker, in development too."""
    jobs = JobsSettings.from_environment()
    problems = CelerySettings.from_environment().broker_problems(settings, jobs)
    if problems:
        raise ConfigError(problems)


def celery_from_environment() -> Celery:
    """The Celery app for the worker and beat commands (raises ConfigError)."""
    settings = load_settings()
    jobs = JobsSettings.load(settings)
    celery = CelerySettings.load(settings, jobs)
    require_broker(settings)
    return create_celery(settings, jobs, celery)
