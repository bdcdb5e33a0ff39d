"""Everything a process needs to run jobs, built from the settings: locks, ledger, runner."""

from collections.abc import Callable
from dataclasses import dataclass

from ..config import ConfigError, Settings
from ..locks import LockBackend, open_lock_backend
from .ledger import JobLedger, open_ledger
from .registry import REGISTRY, Job, discover_jobs
from .runner import JobRunner
from .settings import JobsSettings

# Whatever imports the runtime (routes, schedulers, the run-job command) sees every job.
discover_jobs()


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
    )
    return JobsRuntime(jobs, locks, ledger, runner)
