"""Settings of scheduled jobs and their locks (``LOCK_*`` and ``JOBS_*`` variables).

Where locks and run records live: ``LOCK_URL`` when set; else the shared store when it speaks the
Redis protocol (``STORE_URL``); else the database (``DATABASE_URL``, PostgreSQL advisory locks);
else, in development only, this process's memory. Production refuses memory and Memcached.
"""

from typing import Self

from pydantic import Field, field_validator, model_validator

from ..config import (
    ConfigError,
    Credential,
    EnvironmentSettings,
    ServiceSecret,
    ServiceSecrets,
    Settings,
    secret_list,
    secret_problems,
)
from ..locks import backend_available, backend_module


class DatabaseLocation(EnvironmentSettings):
    """The database's own DATABASE_URL, read by the same rules: locks fall back to it."""

    database_url: Credential = None

    def url(self) -> str:
        return self.database_url.get_secret_value().strip() if self.database_url else ""


class JobsSettings(EnvironmentSettings):
    # redis://, valkey://, postgresql:// (or memory:// in development). Unset: see the module doc.
    lock_url: Credential = None
    # A holder that stops renewing (killed, partitioned) blocks others for at most this long.
    lock_ttl_seconds: float = Field(default=30.0, ge=0.2, le=3600)
    # Unset: a third of the TTL, so two renewals may fail before the lease runs out.
    lock_renew_interval_seconds: float | None = Field(default=None, gt=0)
    lock_timeout_seconds: float = Field(default=2.0, gt=0)

    # false: this process never runs the in-process scheduler (manual runs still work).
    jobs_scheduler_enabled: bool = True
    # Per-job interval overrides in seconds, as JSON: {"rollup_events": 300}.
    jobs_intervals: dict[str, float] = Field(default_factory=dict)
    # Bearer token for POST /jobs/{name}/run and GET /jobs; unset: those routes answer 403.
    jobs_admin_token: ServiceSecret = None
    # Previous tokens still accepted while a new JOBS_ADMIN_TOKEN rolls out (comma-separated).
    jobs_admin_token_fallbacks: ServiceSecrets = None
    # How long run records (status, idempotency keys) are kept.
    jobs_run_retention_seconds: int = Field(default=7 * 86400, ge=60)

    @field_validator("jobs_intervals")
    @classmethod
    def _positive_intervals(cls, value: dict[str, float]) -> dict[str, float]:
        for name, seconds in value.items():
            if seconds <= 0:
                raise ValueError(f"the interval of {name!r} must be a positive number of seconds")
        return value

    @model_validator(mode="after")
    def _renewal_fits_in_the_ttl(self) -> Self:
        if self.lock_renew_interval_seconds is not None and (
            self.lock_renew_interval_seconds > self.lock_ttl_seconds / 2
        ):
            raise ValueError(
                "LOCK_RENEW_INTERVAL_SECONDS must be at most half of LOCK_TTL_SECONDS, "
                "or one missed renewal loses the lock"
            )
        return self

    @property
    def renew_interval(self) -> float:
        if self.lock_renew_interval_seconds is not None:
            return self.lock_renew_interval_seconds
        return self.lock_ttl_seconds / 3

    def resolved_lock_url(self, settings: Settings) -> str:
        if self.lock_url is not None and self.lock_url.get_secret_value().strip():
            return self.lock_url.get_secret_value().strip()
        store = settings.store_url_value
        if store.split("://", 1)[0] in {"redis", "rediss", "valkey", "valkeys"}:
            return store
        database = DatabaseLocation.from_environment().url()
        if database and backend_available(database):
            return database
        return "memory://"

    @property
    def admin_tokens(self) -> tuple[str, ...]:
        """JOBS_ADMIN_TOKEN and its fallbacks; none (the routes are off) without the first."""
        if self.jobs_admin_token is None:
            return ()
        current = self.jobs_admin_token.get_secret_value()
        return (current, *secret_list(self.jobs_admin_token_fallbacks))

    @classmethod
    def load(cls, settings: Settings) -> Self:
        """Read the jobs settings; refuse what is unsafe for several replicas in production."""
        jobs = cls.from_environment()
        url = jobs.resolved_lock_url(settings)
        if url.split("://", 1)[0].lower() == "memcached":
            raise ConfigError(
                [
                    "LOCK_URL must not be memcached://: Memcached cannot hold a lock safely "
                    "(no owner check, evicts keys); use redis://, valkey:// or postgresql://"
                ]
            )
        module = backend_module(url)
        problems: list[str] = []
        if not backend_available(url):
            scheme = url.split("://", 1)[0]
            problems.append(
                f"LOCK_URL: {scheme}:// is not available in this service (built for another)"
            )
        if settings.is_production and module == "memory_lock":
            problems.append(
                "LOCK_URL is required when APP_ENV=production (redis://, valkey:// or "
                "postgresql://; unset, locks use STORE_URL when it is Redis/Valkey, else "
                "DATABASE_URL): in-process locks would let every replica run every job"
            )
        if settings.is_production:
            problems += secret_problems(jobs)
        if problems:
            raise ConfigError(problems)
        return jobs
