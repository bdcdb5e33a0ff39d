"""Everything a process needs to run jobs, built from the settings: locks, ledger, runner."""

from collections.abc import Callable
from dataclasses import dataclass

from ..config import ConfigError, Settings, optional_functions
from ..locks import LockBackend, open_lock_backend
from .ledger import JobLedger, open_ledger
from .registry import REGISTRY, Job, discover_jobs
from .runner import JobRunner
from .settings import JobsSettings

# Whatever imports the runtime (routes, schedulers, the run-job command) sees every job.
discover_jobs()

# What the web adapter sets up in a process that runs jobs outside the web service (run-job,
# the Celery worker), as create_app does in the web process, and what it tidies after each run,
# as after each request: with Django and a database, Django's settings and applications, so
# jobs use the ORM, and the run's database connections (web/job_process.py). Named, not
# imported: a service generated without them has nothing to do.
JOB_PROCESS_SETUP = ("web.job_process:configure",)
AFTER_EACH_RUN = ("web.job_process:after_run",)


def prepare_job_process(settings: Settings) -> None:
    """Set up this process for running jobs (``JOB_PROCESS_SETUP``); once, before the first."""
    for setup in optional_functions(JOB_PROCESS_SETUP):
        setup(settings)


@dataclass
class JobsRuntime:
    settings: JobsSettings
    locks: LockBackend
    ledger: JobLedger
    runner: JobRunner

    def job(self, name: str) -> Job | None:
        return REGISTRY.get(name)

    def interval(self, job: Job) -> float:
        return self.settings.jobs_intervals.get(job.name, job.interval_seconds)

    async def close(self) -> None:
        await self.locks.close()
        await self.ledger.close()


def check_intervals(jobs: JobsSettings) -> None:
    """Refuse interval overrides for jobs this service does not have (a typo runs nothing)."""
    unknown = sorted(set(jobs.jobs_intervals) - set(REGISTRY))
    if unknown:
        known = ", ".join(sorted(REGISTRY))
        raise ConfigError([f"JOBS_INTERVALS: unknown job(s) {', '.join(unknown)}; jobs: {known}"])


def open_jobs(
    settings: Settings, jobs: JobsSettings, should_stop: Callable[[], bool] = lambda: False
) -> JobsRuntime:
    check_intervals(jobs)
    url = jobs.resolved_lock_url(settings)
    locks = open_lock_backend(url, jobs.lock_timeout_seconds)
    ledger = open_ledger(
        url, settings.key_namespace, jobs.lock_timeout_seconds, jobs.jobs_run_retention_seconds
    )
    runner = JobRunner(
        locks,
        ledger,
        settings.key_namespace,
        jobs.lock_ttl_seconds,
        jobs.renew_interval,
        should_stop,
        after_run=optional_functions(AFTER_EACH_RUN),
    )
    return JobsRuntime(jobs, locks, ledger, runner)
