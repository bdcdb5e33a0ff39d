"""``run-job NAME``: run one tick of a job now, once across every replica, then exit.

What a Kubernetes CronJob (or any outside scheduler, or an operator) starts. The tick defaults to
the last multiple of ``--tick-seconds`` (60: a CronJob's minute) at or before now, in UTC, so two
pods started for the same scheduled time name the same tick: one runs it, the other finds the
lock busy or the tick done. ``--scheduled-for`` names the tick explicitly (ISO 8601).

Exit codes: 0 the tick ran or had already run (or another process is running it), 1 the job
failed, lost its lock or was interrupted, 2 bad configuration or unknown job, 3 the lock backend
was unreachable (the CronJob's retry can run it).
"""

import argparse
import asyncio
import signal
from datetime import UTC, datetime

from ..config import ConfigError, Settings
from ..jobs.registry import REGISTRY, discover_jobs, previous_tick
from ..jobs.runner import Outcome
from ..jobs.runtime import open_jobs, prepare_job_process
from ..jobs.settings import JobsSettings
from ..observability.logs import get_logger
from . import refuse_to_start, start

HELP = "run one tick of a scheduled job now (what a CronJob starts); see --list"

EXIT_JOB_FAILED = 1
EXIT_UNAVAILABLE = 3
SUCCESS = {Outcome.SUCCEEDED, Outcome.ALREADY_DONE, Outcome.BUSY}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", nargs="?", help="job name (see --list)")
    parser.add_argument("--list", action="store_true", help="list the jobs and exit")
    parser.add_argument(
        "--scheduled-for",
        metavar="ISO_TIME",
        help="the tick to run (ISO 8601, UTC when no offset); default: see --tick-seconds",
    )
    parser.add_argument(
        "--tick-seconds",
        type=float,
        default=60.0,
        help="without --scheduled-for, run the tick at the last multiple of this many seconds "
        "since the epoch (default 60: the minute a CronJob was scheduled for)",
    )


def _scheduled_for(args: argparse.Namespace) -> datetime:
    if args.scheduled_for:
        value = datetime.fromisoformat(args.scheduled_for)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if args.tick_seconds <= 0:
        raise ValueError("--tick-seconds must be positive")
    return previous_tick(datetime.now(UTC), args.tick_seconds)


def run(args: argparse.Namespace) -> int:
    discover_jobs()  # every module of jobs/scheduled/ (importing the runtime did it too)

    if args.list:
        for job in REGISTRY.values():
            print(f"{job.name}\tevery {job.interval_seconds:g}s\t{job.description}")
        return 0

    def known_job(settings: Settings) -> None:
        if args.job not in REGISTRY:
            known = ", ".join(sorted(REGISTRY)) or "none"
            raise ConfigError([f"unknown job {args.job!r}; jobs of this service: {known}"])

    def valid_tick(settings: Settings) -> None:
        try:
            _scheduled_for(args)
        except ValueError as exc:
            raise ConfigError([str(exc)]) from None

    try:
        settings = start(known_job, valid_tick)
    except ConfigError as exc:
        return refuse_to_start(exc)
    jobs = JobsSettings.load(settings)
    scheduled_for = _scheduled_for(args)
    prepare_job_process(settings)  # Django's ORM, with Django and a database
    return asyncio.run(_run(settings, jobs, args.job, scheduled_for))


async def _run(settings: Settings, jobs: JobsSettings, name: str, scheduled_for: datetime) -> int:
    logger = get_logger(__name__)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    # SIGTERM (the pod is deleted, the Job's deadline passed): stop at the next checkpoint.
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    runtime = open_jobs(settings, jobs, should_stop=stopping.is_set)
    try:
        result = await runtime.runner.run(REGISTRY[name], scheduled_for)
    finally:
        await runtime.close()
    logger.info(
        "run-job done",
        job=name,
        outcome=str(result.outcome),
        idempotency_key=result.idempotency_key,
    )
    if result.outcome in SUCCESS:
        return 0
    if result.outcome is Outcome.UNAVAILABLE:
        return EXIT_UNAVAILABLE
    return EXIT_JOB_FAILED
