"""Settings from the environment (12-factor), with secrets also read from files.

Every setting is an environment variable of the same name in upper case. Secrets may instead be
files in ``SECRETS_DIR`` (default ``/run/secrets``, where Kubernetes and Compose mount them),
one file per variable, named like the variable. An environment variable wins over a file of the
same name; a file's trailing newline is stripped.

``APP_ENV=development`` (the default) runs on embedded defaults with nothing else installed.
``APP_ENV=production`` refuses to start with anything that is missing or not safe to run as several
replicas, naming the variable.
"""

import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from . import SERVICE_NAME

DEFAULT_SECRETS_DIR = "/run/secrets"
MIN_SECRET_KEY_LENGTH = 32
# A padded word ("changeme" * 4) is long but guessable; random keys use many distinct characters.
MIN_SECRET_KEY_DISTINCT_CHARACTERS = 12


class ConfigError(Exception):
    """The environment does not describe a service that may start; ``problems`` names why."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


def refuse_unless_valid(*loaders: Callable[[], object]) -> None:
    """Run every feature's settings loader and refuse once, naming every problem: an operator
    fixing a deployment sees all missing variables at once, not one per restart."""
    problems: list[str] = []
    for loader in loaders:
        try:
            loader()
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)


class EnvironmentSettings(BaseSettings):
    """Settings read from the environment and from the secret files in SECRETS_DIR.

    ``Settings`` and the settings of optional features that keep their own class derive from
    it, so every one of them reads secret files the same way.
    """

    model_config = SettingsConfigDict(
        env_prefix="",
        case_sensitive=False,
        extra="ignore",
        frozen=True,
    )

    @classmethod
    def from_environment(cls) -> Self:
        """Read the environment and secret files, or raise ConfigError naming the variables."""
        secrets_dir = Path(os.environ.get("SECRETS_DIR", DEFAULT_SECRETS_DIR))
        if "SECRETS_DIR" in os.environ and not secrets_dir.is_dir():
            raise ConfigError([f"SECRETS_DIR: {secrets_dir} is not a directory"])
        try:
            if secrets_dir.is_dir():
                return cls(_secrets_dir=secrets_dir)
            return cls()
        except ValidationError as exc:
            raise ConfigError([_describe(error) for error in exc.errors()]) from None


class Settings(EnvironmentSettings):
    app_env: Literal["development", "production"] = "development"
    service_name: str = SERVICE_NAME

    # HTTP server (uvicorn). One process per container: scale with replicas, not workers.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Above the load balancer's idle timeout, so the balancer (not us) closes idle connections.
    keepalive_timeout_seconds: int = Field(default=75, gt=0)
    forwarded_allow_ips: str = "127.0.0.1"

    # Graceful shutdown: on SIGTERM readiness fails at once, requests are still served for the drain
    # delay (the balancer needs it to notice), then in-flight requests get the grace time to finish.
    shutdown_drain_seconds: float = Field(default=5.0, ge=0)
    shutdown_grace_seconds: int = Field(default=20, gt=0)

    readiness_timeout_seconds: float = Field(default=2.0, gt=0)

    secret_key: SecretStr | None = None

    # Shared store for sessions and cache (redis://, valkey://, memcached://). Unset in development:
    # an in-process store, which production refuses because each replica would have its own.
    store_url: SecretStr | None = None
    store_timeout_seconds: float = Field(default=1.0, gt=0)
    key_namespace: str = Field(default=SERVICE_NAME, pattern=r"^[A-Za-z0-9._-]{1,64}$")

    session_cookie_name: str = Field(default="session", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    # Unset: Secure in production, not in development (plain http on localhost).
    session_cookie_secure: bool | None = None
    session_cookie_samesite: Literal["lax", "strict"] = "lax"
    # At most 30 days: Memcached reads a longer TTL as an absolute time.
    session_ttl_seconds: int = Field(default=86400, ge=60, le=30 * 24 * 3600)
    session_expiry: Literal["sliding", "absolute"] = "sliding"

    # The example login route's one account. Development falls back to demo/demo; production has
    # no demo login unless DEMO_PASSWORD is set.
    demo_username: str = "demo"
    demo_password: SecretStr | None = None

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    request_id_header: str = "X-Request-ID"

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Self:
        if not self.is_production:
            return self
        problems: list[str] = []
        key = self.secret_key.get_secret_value() if self.secret_key else ""
        if not key:
            problems.append(
                "SECRET_KEY is required when APP_ENV=production (env var or secret file)"
            )
        elif len(key) < MIN_SECRET_KEY_LENGTH or len(set(key)) < MIN_SECRET_KEY_DISTINCT_CHARACTERS:
            problems.append(
                f"SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} random characters "
                "when APP_ENV=production (generate one: python -c "
                "'import secrets; print(secrets.token_urlsafe(48))')"
            )
        store = self.store_url.get_secret_value() if self.store_url else ""
        if not store:
            problems.append(
                "STORE_URL is required when APP_ENV=production: sessions and cache must live in "
                "a store shared by every replica"
            )
        elif store.startswith("memory://"):
            problems.append(
                "STORE_URL must not be memory:// when APP_ENV=production: each replica would keep "
                "its own sessions and cache"
            )
        if self.session_cookie_secure is False:
            problems.append("SESSION_COOKIE_SECURE must not be false when APP_ENV=production")
        if self.log_format != "json":
            problems.append("LOG_FORMAT must be json when APP_ENV=production")
        if problems:
            raise ConfigError(problems)
        return self

    @property
    def store_url_value(self) -> str:
        return self.store_url.get_secret_value() if self.store_url else "memory://"

    @property
    def cookie_secure(self) -> bool:
        if self.session_cookie_secure is None:
            return self.is_production
        return self.session_cookie_secure

    def demo_password_value(self) -> str | None:
        if self.demo_password is not None:
            return self.demo_password.get_secret_value()
        return None if self.is_production else "demo"

    def secret_key_value(self) -> str:
        """The signing secret. Development without one gets a random key for this process only."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        return _DEVELOPMENT_SECRET_KEY


_DEVELOPMENT_SECRET_KEY = secrets.token_urlsafe(48)


def load_settings() -> Settings:
    """Read the environment and secret files, or raise ConfigError naming the variables."""
    return Settings.from_environment()


def _describe(error: Mapping[str, Any]) -> str:
    variable = "_".join(str(part) for part in error.get("loc", ())).upper()
    message = error.get("msg", "invalid value")
    return f"{variable}: {message}" if variable else str(message)
