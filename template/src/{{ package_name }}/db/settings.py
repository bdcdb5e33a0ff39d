"""Database settings, read from the environment (and secret files) like every other setting.

``DATABASE_URL`` is the only required one, and only in production: development without it still
starts, logs that no database is configured, and the database-backed routes answer 503.
"""

from typing import Self

from pydantic import Field, SecretStr, field_validator

from ..config import ConfigError, Credential, EnvironmentSettings, Settings

ASYNC_SCHEME = "postgresql+asyncpg"
ACCEPTED_SCHEMES = ("postgresql", "postgres", ASYNC_SCHEME)


def async_url(url: str) -> str:
    """``url`` with the scheme SQLAlchemy needs for asyncpg (``postgresql+asyncpg://``).

    ``postgresql://`` and ``postgres://`` (what most providers hand out) mean the same server.
    """
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.lower() not in ACCEPTED_SCHEMES:
        allowed = ", ".join(f"{s}://" for s in ACCEPTED_SCHEMES)
        got = f"{scheme}://" if separator else "no scheme"
        raise ValueError(f"must be a PostgreSQL URL ({allowed}), got {got}")
    return f"{ASYNC_SCHEME}://{rest}"


class DatabaseSettings(EnvironmentSettings):
    # postgresql://user:password@host:5432/dbname; may be a secret file (it carries a password).
    database_url: Credential = None

    # Per replica: the pool keeps up to DB_POOL_SIZE connections open and opens up to
    # DB_MAX_OVERFLOW more under load, never more. Size them against max_connections (README).
    db_pool_size: int = Field(default=5, ge=1, le=100)
    db_max_overflow: int = Field(default=5, ge=0, le=100)
    # How long a request waits for a free connection before it gets 503.
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    # Server-side limit of every statement the service runs (migrations have their own).
    db_statement_timeout_ms: int = Field(default=5000, ge=1)
    db_connect_timeout_seconds: float = Field(default=5.0, gt=0)

    # Start-up only: a database that is still starting or briefly unreachable is retried with
    # exponential backoff (with jitter); a wrong password or database name is not.
    db_connect_retries: int = Field(default=5, ge=0, le=20)
    db_connect_backoff_seconds: float = Field(default=0.5, gt=0)

    # `migrate` only: how long a DDL statement may wait for a table lock before the migration
    # fails (and can be retried), instead of queueing every query of the service behind it.
    db_migration_lock_timeout_ms: int = Field(default=5000, ge=1)

    @field_validator("database_url")
    @classmethod
    def _normalise_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        return SecretStr(async_url(value.get_secret_value().strip()))

    @property
    def configured(self) -> bool:
        return self.database_url is not None

    def url(self) -> str:
        """The SQLAlchemy URL (``postgresql+asyncpg://``). Only call it when ``configured``."""
        if self.database_url is None:
            raise ConfigError(["DATABASE_URL is not set"])
        return self.database_url.get_secret_value()

    @property
    def max_connections(self) -> int:
        """The most connections one replica ever holds: pool plus overflow."""
        return self.db_pool_size + self.db_max_overflow

    @classmethod
    def load(cls, settings: Settings) -> Self:
        """Read the database settings; production without DATABASE_URL raises ConfigError."""
        database = cls.from_environment()
        if settings.is_production and not database.configured:
            raise ConfigError(
                [
                    "DATABASE_URL is required when APP_ENV=production "
                    "(postgresql://user:password@host:5432/dbname, env var or secret file)"
                ]
            )
        return database
