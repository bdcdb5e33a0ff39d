"""The storage readiness check, cached so that frequent probes stay cheap."""

import time
from collections.abc import Awaitable, Callable


class CachedCheck:
    """Runs ``check`` at most once per ``ttl_seconds`` and replays its outcome in between.

    Kubernetes probes every few seconds on every replica; one bucket request per replica per
    interval is enough to notice an outage, and recovery shows within one interval.
    """

    def __init__(self, check: Callable[[], Awaitable[None]], ttl_seconds: float) -> None:
        self._check = check
        self._ttl = ttl_seconds
        self._checked_at: float | None = None
        self._failure: Exception | None = None

    async def __call__(self) -> None:
        now = time.monotonic()
        if self._checked_at is None or now - self._checked_at >= self._ttl:
            try:
                await self._check()
            except Exception as exc:  # replayed to the probe until the next real check
                self._failure = exc
            else:
                self._failure = None
            self._checked_at = time.monotonic()
        if self._failure is not None:
            raise self._failure
