"""Settings from the environment (12-factor), with secrets also read from files.

Every setting is an environment variable of the same name in upper case. Secrets may instead be
files in ``SECRETS_DIR`` (default ``/run/secrets``, where Kubernetes and Compose mount them),
one file per variable, named like the variable. An environment variable wins over a file of the
same name; a file's trailing newline is stripped.

``APP_ENV=development`` (the default) runs on embedded defaults with nothing else installed, and
reads a ``.env`` file in the working directory when there is one (the environment wins over it).
``APP_ENV=production`` never reads ``.env``: only the environment and secret files configure it.
It refuses to start with anything that is missing or not safe to run as several replicas, naming
every such variable of every feature at once (``check_configuration``).
"""

import importlib
import itertools
import math
import os
import secrets
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from . import SERVICE_NAME
from .cpu_limit import available_cpus
from .security.csrf import parse_origins
from .security.keys import SigningKeys, split_keys

DEFAULT_SECRETS_DIR = "/run/secrets"
# Read in development only, from the working directory, as `docker compose` and most tools do.
ENV_FILE = Path(".env")
# The one strength rule of every secret this service signs or verifies with (``ServiceSecret``).
MIN_SECRET_LENGTH = 32
# What ``secret_strength_bits`` must reach: 32 random hex digits (128 bits) score 90 to 130, a
# repeated word or a run like "abcdefghijkl..." near 0.
MIN_SECRET_BITS = 80
KEY_RECIPE = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"

# The checks of every feature's settings, as "module:callable" taking the core settings and
# raising ConfigError; modules of features this service was not generated with do not exist and
# are skipped. A start runs them all before anything opens, so one refusal names every problem.
FEATURE_SETTINGS = (
    "store:check_store_url",
    "storage.settings:StorageSettings.load",
    "db.settings:DatabaseSettings.load",
    "jobs.settings:JobsSettings.load",
    "jobs.celery_app:CelerySettings.load",
    "observability.tracing:TracingSettings.load",
    "outbound:OutboundSettings.load",
    "flags:FeatureFlagSettings.load",
    "web.admin_site:AdminSiteSettings.load",
)


@dataclass(frozen=True)
class Secret:
    """Marks a secret setting. ``checked``: this service signs or verifies with it, so production
    refuses a weak value (``secret_problems``); otherwise it is a credential another system issued
    and verifies (a URL's password, a cloud key), whose rules are that system's."""

    checked: bool
    # The value lists several secrets (previous keys still accepted during a rotation),
    # separated by commas or whitespace; each one must pass the strength rule.
    listed: bool = False


ServiceSecret = Annotated[SecretStr | None, Secret(checked=True)]
ServiceSecrets = Annotated[SecretStr | None, Secret(checked=True, listed=True)]
Credential = Annotated[SecretStr | None, Secret(checked=False)]


def secret_list(value: SecretStr | None) -> tuple[str, ...]:
    """The secrets a ``ServiceSecrets`` setting lists; none when it is unset or blank."""
    return split_keys(value.get_secret_value()) if value is not None else ()


class ConfigError(Exception):
    """The environment does not describe a service that may start; ``problems`` names why."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


def profile() -> str:
    """``APP_ENV`` as the process environment sets it: neither ``.env`` nor a file can switch a
    process into (or out of) production."""
    return os.environ.get("APP_ENV", "development")


def reads_env_file() -> bool:
    return profile() != "production"


def ignored_env_file() -> Path | None:
    """The ``.env`` a production process is not reading, if there is one (to say so)."""
    return None if reads_env_file() or not ENV_FILE.is_file() else ENV_FILE


def _secrets_dir() -> Path | None:
    secrets_dir = Path(os.environ.get("SECRETS_DIR", DEFAULT_SECRETS_DIR))
    return secrets_dir if secrets_dir.is_dir() else None


def _secrets_dir_problems() -> list[str]:
    if "SECRETS_DIR" in os.environ and _secrets_dir() is None:
        return [f"SECRETS_DIR: {os.environ['SECRETS_DIR']} is not a directory"]
    return []


class EnvironmentSettings(BaseSettings):
    """Settings read from the environment, the secret files in SECRETS_DIR and, in development,
    ``.env``.

    ``Settings`` and the settings of optional features that keep their own class derive from
    it, so every one of them reads its variables the same way.
    """

    model_config = SettingsConfigDict(
        env_prefix="",
        case_sensitive=False,
        extra="ignore",
        frozen=True,
    )

    @classmethod
    def from_environment(cls, **values: Any) -> Self:
        """Read the environment (``values`` win over it), or raise ConfigError naming every
        invalid variable."""
        try:
            return cls(
                _env_file=ENV_FILE if reads_env_file() else None,
                _secrets_dir=_secrets_dir(),
                **values,
            )
        except ValidationError as exc:
            prefix = str(cls.model_config.get("env_prefix") or "")
            raise ConfigError([_describe(error, prefix) for error in exc.errors()]) from None


class Settings(EnvironmentSettings):
    app_env: Literal["development", "production"] = "development"
    service_name: str = SERVICE_NAME

    # HTTP server (uvicorn). Processes per container: 1 suits most services (scale with replicas);
    # more share the container's ports, one core each (docs: http-server, processes per container).
    web_concurrency: int = Field(default=1, ge=1, le=64)
    # With several: a process whose event loop has not run for this long is killed and
    # replaced (the liveness probe reaches one process of several, so it cannot tell).
    web_process_timeout_seconds: float = Field(default=30.0, ge=1)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # The internal port: /metrics and the /jobs admin routes, for the cluster only (never routed
    # by an Ingress or the public balancer). The public port answers 404 for them.
    admin_port: int = Field(default=8001, ge=1, le=65535)
    # Above the load balancer's idle timeout, so the balancer (not us) closes idle connections.
    keepalive_timeout_seconds: int = Field(default=75, gt=0)
    forwarded_allow_ips: str = "127.0.0.1"

    # Graceful shutdown: on SIGTERM readiness fails at once, requests are still served for the drain
    # delay (the balancer needs it to notice), then in-flight requests get the grace time to finish.
    shutdown_drain_seconds: float = Field(default=5.0, ge=0)
    shutdown_grace_seconds: int = Field(default=20, gt=0)

    # Request bounds (413 / 431): what one request can make a replica hold, whatever the route.
    # Uploads under /files have their own limit (STORAGE_MAX_UPLOAD_BYTES).
    max_request_body_bytes: int = Field(default=1024 * 1024, ge=1)
    max_request_header_bytes: int = Field(default=16 * 1024, ge=1024)
    max_request_headers: int = Field(default=100, ge=10)
    # uvicorn's request parser; auto: httptools when installed, else h11. Both are bounded.
    http_parser: Literal["auto", "httptools", "h11"] = "auto"

    readiness_timeout_seconds: float = Field(default=2.0, gt=0)

    secret_key: ServiceSecret = None
    # Previous keys still accepted while a new SECRET_KEY rolls out (session cookies, signed
    # URLs); everything is signed with SECRET_KEY alone. Comma- or whitespace-separated.
    secret_key_fallbacks: ServiceSecrets = None

    # Shared store for sessions and cache (redis://, valkey://, memcached://). Unset in development:
    # an in-process store, which production refuses because each replica would have its own.
    store_url: Credential = None
    store_timeout_seconds: float = Field(default=1.0, gt=0)
    # Connections one server process opens to the store, at most: a burst of requests waits (up
    # to STORE_TIMEOUT_SECONDS, then 503) for a free one instead of opening one per request.
    store_max_connections: int = Field(default=20, ge=1, le=1000)
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
    demo_password: ServiceSecret = None

    # /docs, /redoc and /openapi.json. Unset: on in development, off in production (the schema
    # maps every route for whoever asks).
    api_docs_enabled: bool | None = None

    # Login throttling (security/throttle.py): failed attempts counted in the shared store, per
    # account and per client address, in fixed windows; over the limit a login gets 429.
    login_account_max_failures: int = Field(default=10, ge=1)
    login_account_window_seconds: int = Field(default=900, ge=1, le=30 * 24 * 3600)
    login_client_max_failures: int = Field(default=100, ge=1)
    login_client_window_seconds: int = Field(default=900, ge=1, le=30 * 24 * 3600)

    # Browser protections (security/): origins, besides the service's own, whose pages may send
    # cookie-carrying POST/PUT/PATCH/DELETE (comma-separated scheme://host[:port]); and HSTS,
    # off (0) by default because TLS ends at the ingress, which should send it.
    csrf_trusted_origins: str = ""
    hsts_max_age_seconds: int = Field(default=0, ge=0)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    request_id_header: str = "X-Request-ID"

    @field_validator("csrf_trusted_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        parse_origins(value)  # a ValueError names the entry that is not an origin
        return value

    @property
    def trusted_origins(self) -> frozenset[str]:
        return parse_origins(self.csrf_trusted_origins)

    @model_validator(mode="after")
    def _ports_differ(self) -> Self:
        if self.admin_port == self.port:
            raise ValueError("ADMIN_PORT must differ from PORT: metrics and admin stay internal")
        return self

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    def problems(self) -> list[str]:
        """What makes these settings unsafe to start with (production only), one per variable."""
        if not self.is_production:
            return []
        problems = secret_problems(self)
        if self.secret_key is None:
            problems.append(
                "SECRET_KEY is required when APP_ENV=production (env var or secret file)"
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
        return problems

    def process_problems(self) -> list[str]:
        """What ``serve`` refuses for WEB_CONCURRENCY, in any profile (other commands run one
        process whatever it says). Several processes share nothing in memory and use a core
        each: state that would be each process's own (the in-process store holds sessions,
        cache and job locks), and more processes than the container has CPUs."""
        if self.web_concurrency == 1:
            return []
        problems = []
        if self.store_url_value.startswith("memory://"):
            problems.append(
                f"WEB_CONCURRENCY={self.web_concurrency} needs STORE_URL: the in-process store "
                "(memory://) would give each process its own sessions, cache and job locks"
            )
        cpus = available_cpus()
        if self.web_concurrency > cpus:
            problems.append(
                f"WEB_CONCURRENCY={self.web_concurrency} is more than the {cpus:g} "
                f"CPU{'' if cpus == 1 else 's'} this container may use (its CPU limit or "
                "affinity): the processes would share them; lower WEB_CONCURRENCY or raise the "
                "CPU limit"
            )
        return problems

    @property
    def store_url_value(self) -> str:
        return self.store_url.get_secret_value() if self.store_url else "memory://"

    @property
    def api_docs_enabled_value(self) -> bool:
        if self.api_docs_enabled is None:
            return not self.is_production
        return self.api_docs_enabled

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

    @property
    def signing_keys(self) -> SigningKeys:
        """SECRET_KEY to sign with, and SECRET_KEY_FALLBACKS still accepted."""
        return SigningKeys(self.secret_key_value(), secret_list(self.secret_key_fallbacks))


_DEVELOPMENT_SECRET_KEY = secrets.token_urlsafe(48)


def secret_strength_bits(secret: str) -> float:
    """A conservative estimate of a secret's entropy in bits.

    Only one period of a repeated secret counts ("changeme" * 4 is "changeme"), and of that the
    smaller of two estimates: the spread of its characters, and the spread of the steps between
    neighbours (a run like "abcdef..." or "0123..." has one step). Random secrets score close to
    their real entropy; padded words, keyboard runs and repeated characters score near 0.
    """
    core = secret[: _period(secret)]
    steps = [ord(b) - ord(a) for a, b in itertools.pairwise(core)]
    return max(0.0, len(core) * min(_spread(list(core)), _spread(steps) if steps else 0.0))


def _period(text: str) -> int:
    """The length of the shortest prefix that repeated (the last copy cut short) gives ``text``."""
    border = [0] * len(text)  # Knuth-Morris-Pratt: longest proper prefix that is also a suffix
    for i in range(1, len(text)):
        k = border[i - 1]
        while k and text[i] != text[k]:
            k = border[k - 1]
        border[i] = k + 1 if text[i] == text[k] else 0
    return len(text) - border[-1] if text else 0


def _spread(symbols: list[Any]) -> float:
    """Shannon entropy of the symbols, in bits per symbol."""
    counts = Counter(symbols)
    total = len(symbols)
    return -sum(n / total * math.log2(n / total) for n in counts.values())


def weak_secret(secret: str) -> bool:
    """The one strength rule: at least ``MIN_SECRET_LENGTH`` characters and ``MIN_SECRET_BITS``."""
    return len(secret) < MIN_SECRET_LENGTH or secret_strength_bits(secret) < MIN_SECRET_BITS


def secret_problems(values: "EnvironmentSettings") -> list[str]:
    """One problem per ``ServiceSecret`` field of ``values`` set to a weak value, named by its
    variable. Every settings class runs it in production."""
    prefix = str(values.model_config.get("env_prefix") or "").upper()
    problems = []
    for name, field in type(values).model_fields.items():
        if not any(isinstance(m, Secret) and m.checked for m in field.metadata):
            continue
        value = getattr(values, name)
        listed = any(isinstance(m, Secret) and m.listed for m in field.metadata)
        candidates = secret_list(value) if listed else (value.get_secret_value(),) if value else ()
        if any(weak_secret(candidate) for candidate in candidates):
            each = ", every key it lists," if listed else ""
            problems.append(
                f"{prefix}{name.upper()} must be at least {MIN_SECRET_LENGTH} random characters"
                f"{each} when APP_ENV=production (too short or too predictable; generate one: "
                f"{KEY_RECIPE})"
            )
    return problems


def read_settings() -> tuple[Settings, list[str]]:
    """The core settings and every problem with them. An invalid variable is named and read as
    its default, so the checks of the other settings still run (and name their problems too)."""
    problems = _secrets_dir_problems()
    defaults: dict[str, Any] = {"app_env": profile()}
    try:
        settings = Settings.from_environment(**defaults)
    except ConfigError as exc:
        problems += exc.problems
        for problem in exc.problems:
            name = problem.split(":", 1)[0].lower()
            if name in Settings.model_fields:
                defaults[name] = Settings.model_fields[name].get_default(call_default_factory=True)
        try:
            settings = Settings.from_environment(**defaults)
        except ConfigError:
            settings = Settings.model_construct(app_env="development")
    return settings, problems + settings.problems()


def load_settings() -> Settings:
    """The core settings, or ConfigError naming every problem with them."""
    settings, problems = read_settings()
    if problems:
        raise ConfigError(problems)
    return settings


def feature_problems(settings: Settings, *checks: Callable[[Settings], object]) -> list[str]:
    """Every problem of every feature's settings (``FEATURE_SETTINGS``), then of ``checks``."""
    loaders = [*_feature_loaders(), *checks]
    problems: list[str] = []
    for loader in loaders:
        try:
            loader(settings)
        except ConfigError as exc:
            problems += exc.problems
    # One problem may be found by two checks (a variable two features read): name it once.
    return list(dict.fromkeys(problems))


def check_configuration(*checks: Callable[[Settings], object]) -> Settings:
    """The one check every command runs before it starts anything: the core settings, every
    feature's settings and the command's own ``checks``, refused at once with every problem."""
    settings, problems = read_settings()
    problems += feature_problems(settings, *checks)
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
    return settings


def _feature_loaders() -> list[Callable[[Settings], object]]:
    return optional_functions(FEATURE_SETTINGS)


def optional_functions(entries: Sequence[str]) -> list[Callable[..., Any]]:
    """The functions ``entries`` name (``module:attribute``, relative to this package) whose
    module this service has: a module it was generated without is skipped."""
    loaders: list[Callable[..., Any]] = []
    for entry in entries:
        module_name, attribute = entry.split(":")
        qualified = f"{__package__}.{module_name}"
        try:
            loader: Any = importlib.import_module(qualified)
        except ModuleNotFoundError as exc:
            # Only a feature this service was generated without; a missing library is a bug.
            if exc.name is None or not (qualified + ".").startswith(exc.name + "."):
                raise
            continue
        for name in attribute.split("."):
            loader = getattr(loader, name)
        loaders.append(loader)
    return loaders


def _describe(error: Mapping[str, Any], prefix: str = "") -> str:
    variable = "_".join(str(part) for part in error.get("loc", ())).upper()
    message = error.get("msg", "invalid value")
    return f"{prefix.upper()}{variable}: {message}" if variable else str(message)
