"""Feature flags: behaviour changed without a redeploy, the same on every replica.

Code asks an OpenFeature client, the vendor-neutral flag API (``flags.client.get_string_value``
and friends), and never learns where the flags come from. The provider here needs nothing
running: it reads ``FEATURE_FLAGS_FILE``, flag definitions in flagd's format (variants, a default
variant, targeting rules, fractional rollouts) evaluated by flagd's own engine
(openfeature-flagd-core), and reads the file again when it changes.

- **When a change is seen.** Each evaluation checks the file's identity (inode, size,
  modification time) if the last check is ``FEATURE_FLAGS_POLL_SECONDS`` old, and re-reads it
  when it changed. So an evaluation never uses a file older than the poll interval, counted from
  when the file changed on the replica's disk. Mount one file on every replica (a ConfigMap
  directory in Kubernetes, a bind mount in Compose).
- **A bad edit breaks nothing.** A file that is missing or invalid refuses the start, naming
  FEATURE_FLAGS_FILE. A later bad edit keeps the last good flags, logs the error once per
  version and counts ``feature_flag_reloads_total{result="invalid"}``: one typo never flips
  every flag back to its default at once.
- **No file:** every flag takes the default the code passes to the client.

``feature_flags_loaded_timestamp_seconds`` is the modification time of the flags in use: replicas
that disagree show it.
"""

import itertools
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import OpenFeatureError
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType
from openfeature.provider import AbstractProvider, Metadata
from prometheus_client import Counter, Gauge
from pydantic import Field, field_validator

from .config import EnvironmentSettings, Settings
from .observability.logs import get_logger

if TYPE_CHECKING:
    from openfeature.contrib.tools.flagd.core import FlagdCore

logger = get_logger(__name__)

RELOADS = Counter(
    "feature_flag_reloads_total",
    "Re-reads of the feature flag file after it changed, by result (ok, invalid)",
    ["result"],
)
LOADED_AT = Gauge(
    "feature_flags_loaded_timestamp_seconds",
    "Modification time of the feature flag file whose flags are in use",
    multiprocess_mode="livemin",  # several server processes: the oldest file still in use
)

# One OpenFeature domain per FeatureFlags, so two services built in one process (the tests'
# replicas) never share a provider.
_domains = itertools.count(1)


class FeatureFlagSettings(EnvironmentSettings):
    # Flag definitions in flagd's JSON format; unset: every flag takes its default in code.
    feature_flags_file: Path | None = None
    feature_flags_poll_seconds: float = Field(default=5.0, gt=0, le=300)

    @field_validator("feature_flags_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("feature_flags_file")
    @classmethod
    def _holds_valid_flags(cls, path: Path | None) -> Path | None:
        if path is not None:
            try:
                read_definitions(path)
            except InvalidFlagFile as exc:
                raise ValueError(str(exc)) from None
        return path

    @classmethod
    def load(cls, settings: Settings) -> Self:
        """Read the flag settings and check the flag file, or raise ConfigError naming every
        problem."""
        return cls.from_environment()


class InvalidFlagFile(Exception):
    """The flag file cannot be read, or does not hold valid flag definitions."""


FileIdentity = tuple[int, int, int]
# The identity of a file that cannot be read (gone, or no permission).
UNREADABLE: FileIdentity = (-1, -1, -1)


def _identity(path: Path) -> FileIdentity:
    # stat follows symlinks: a ConfigMap update swaps a symlink, which changes the inode.
    status = path.stat()
    return status.st_ino, status.st_size, status.st_mtime_ns


def new_evaluator(data: dict[str, Any] | None = None) -> "FlagdCore":
    """flagd's evaluation engine, holding the flags in ``data`` (none when not given).

    Imported here, not at the top: the engine (its targeting rules, semver and CBOR support)
    takes about 20 ms of CPU to import, and a service without a flag file never needs it unless
    code evaluates a flag. Errors of ``set_flags`` propagate to the caller.
    """
    from openfeature.contrib.tools.flagd.core import FlagdCore

    evaluator = FlagdCore()
    if data is not None:
        evaluator.set_flags(data)
    return evaluator


def read_definitions(path: Path) -> "FlagdCore":
    """The flags defined in ``path``, ready to evaluate, or InvalidFlagFile saying why not."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidFlagFile(f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidFlagFile(f"{path} is not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("flags"), dict):
        raise InvalidFlagFile(f'{path} must be a JSON object with a "flags" object')
    try:
        evaluator = new_evaluator(data)
    except (OpenFeatureError, ValueError, TypeError, KeyError, AttributeError) as exc:
        detail = getattr(exc, "error_message", None) or str(exc)
        raise InvalidFlagFile(f"{path} holds an invalid flag definition: {detail}") from None
    return evaluator


class FlagFileProvider(AbstractProvider):
    """OpenFeature provider over a flagd flag file, re-read when it changes."""

    def __init__(
        self,
        path: Path | None,
        poll_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.path = path
        self.poll_seconds = poll_seconds
        self._clock = clock
        # Without a file, the engine is made at the first evaluation (every flag's default).
        self._evaluator: FlagdCore | None = None
        self._identity: FileIdentity | None = None
        self._refused: FileIdentity | None = None
        self._checked_at = -float("inf")
        self._lock = threading.Lock()
        if path is not None:
            self._load(path, _identity(path))

    def get_metadata(self) -> Metadata:
        return Metadata(name="flag-file")

    def _load(self, path: Path, identity: FileIdentity) -> None:
        self._evaluator = read_definitions(path)
        self._identity = identity
        LOADED_AT.set(identity[2] / 1e9)

    def refresh(self) -> None:
        """Re-read the file if the last check is a poll interval old and the file changed."""
        now = self._clock()
        if self.path is None or now - self._checked_at < self.poll_seconds:
            return
        with self._lock:
            if now - self._checked_at < self.poll_seconds:
                return  # another thread checked meanwhile
            self._checked_at = now
            try:
                identity = _identity(self.path)
            except OSError as exc:
                self._refuse(UNREADABLE, f"cannot read {self.path}: {exc.strerror or exc}")
                return
            if identity in (self._identity, self._refused):
                return
            try:
                self._load(self.path, identity)
            except InvalidFlagFile as exc:
                self._refuse(identity, str(exc))
                return
            self._refused = None
            RELOADS.labels("ok").inc()
            logger.info("feature flags reloaded", path=str(self.path))

    def _refuse(self, identity: FileIdentity, reason: str) -> None:
        if identity == self._refused:
            return  # this version was refused already
        self._refused = identity
        RELOADS.labels("invalid").inc()
        logger.error("feature flag file refused; keeping the last good flags", reason=reason)

    def _resolve(
        self, resolve: str, key: str, default: Any, context: EvaluationContext | None
    ) -> FlagResolutionDetails[Any]:
        self.refresh()
        evaluator = self._evaluator
        if evaluator is None:
            evaluator = self._evaluator = new_evaluator()
        result: FlagResolutionDetails[Any] = getattr(evaluator, resolve)(key, default, context)
        return result

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        return self._resolve("resolve_boolean_value", flag_key, default_value, evaluation_context)

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._resolve("resolve_string_value", flag_key, default_value, evaluation_context)

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._resolve("resolve_integer_value", flag_key, default_value, evaluation_context)

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return self._resolve("resolve_float_value", flag_key, default_value, evaluation_context)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Any,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Any]:
        return self._resolve("resolve_object_value", flag_key, default_value, evaluation_context)


class FeatureFlags:
    """The process's flags: ``client`` is the OpenFeature client routes evaluate with."""

    def __init__(self, settings: FeatureFlagSettings) -> None:
        self.settings = settings
        self.provider = FlagFileProvider(
            settings.feature_flags_file, settings.feature_flags_poll_seconds
        )
        self._domain = f"{__package__}-{next(_domains)}"
        api.set_provider_and_wait(self.provider, self._domain)
        self.client: OpenFeatureClient = api.get_client(self._domain)

    @property
    def description(self) -> str:
        path = self.settings.feature_flags_file
        return str(path) if path is not None else "none (every flag takes its default in code)"

    def close(self) -> None:
        self.provider.shutdown()


def evaluation_context(user: str | None, **attributes: FlagValueType | None) -> EvaluationContext:
    """What targeting rules see: the user as the targeting key (the same user lands in the same
    rollout bucket on every replica), and the attributes given."""
    values = {name: value for name, value in attributes.items() if value is not None}
    values["authenticated"] = user is not None
    return EvaluationContext(targeting_key=user, attributes=values)
