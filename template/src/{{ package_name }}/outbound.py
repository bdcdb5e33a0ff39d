"""Calls to other services: bounded in time, retried only when safe, shed when the peer is down.

One ``OutboundClient`` per process (``app.state.outbound``), closed on shutdown:

- **Timeouts, always.** Connect and read timeouts on every attempt, and a total budget for the
  whole call, retries and their waits included (``OUTBOUND_*_TIMEOUT_SECONDS``).
- **Retries only when a repeat is harmless.** GET, HEAD, OPTIONS, PUT and DELETE, or any method
  sent with an idempotency key, are retried on connection failures and on 429, 502, 503 and 504,
  with exponential backoff and full jitter (stamina); ``Retry-After`` replaces the backoff, and a
  wait that would not fit in the remaining budget ends the call instead. A POST without a key is
  sent once.
- **A circuit breaker per upstream** (purgatory): after ``OUTBOUND_BREAKER_FAILURES`` failed
  attempts in a row the upstream is not called for ``OUTBOUND_BREAKER_RECOVERY_SECONDS``; the
  calls fail at once (``UpstreamUnavailable``), so a dead peer costs no waiting requests. Then
  calls go through again: the first failure opens it again, the first success closes it. A 5xx
  answer or a failed connection is a failure; a 4xx or a 429 is not.
- **Followed across services.** The request ID goes along (``X-Request-ID``), and the trace
  context when tracing is on (``add_header_source``).
- **Measured per upstream:** ``outbound_requests_total{upstream,outcome}``,
  ``outbound_request_duration_seconds{upstream}``, ``outbound_retries_total{upstream}`` and
  ``outbound_circuit_open{upstream}``.
- **A bounded pool**: at most ``OUTBOUND_MAX_CONNECTIONS`` connections per process, shared by
  every upstream; a call waits for a free one within its connect timeout. It is built at the
  first call, so a replica that never calls out pays nothing for it at start.
- **Loaded at the first call.** The HTTP client, retry and breaker libraries are imported by
  the first call, not at start: they are about 0.15 s of CPU per process start (measured with
  ``python -X importtime``), paid by every replica and every server process whether or not it
  ever calls out.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self

import anyio
from prometheus_client import Counter, Gauge, Histogram
from pydantic import Field, model_validator

from .config import EnvironmentSettings, Settings
from .observability.logs import get_logger
from .observability.request_id import current_request_id

if TYPE_CHECKING:  # imported by the first call (see the module docstring)
    import httpx2
    from purgatory import AsyncCircuitBreakerFactory

logger = get_logger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})

REQUESTS = Counter(
    "outbound_requests_total",
    "Calls to other services, by upstream and outcome (ok, http_error, timeout, unavailable)",
    ["upstream", "outcome"],
)
DURATION = Histogram(
    "outbound_request_duration_seconds",
    "Duration of calls to other services, retries included",
    ["upstream"],
)
RETRIES = Counter("outbound_retries_total", "Attempts repeated after a failure", ["upstream"])
CIRCUIT_OPEN = Gauge(
    "outbound_circuit_open",
    "1 while the upstream's circuit breaker is open (in any server process)",
    ["upstream"],
    multiprocess_mode="livemax",
)

HeaderSource = Callable[[dict[str, str]], None]
_HEADER_SOURCES: list[HeaderSource] = []


def add_header_source(source: HeaderSource) -> None:
    """Have ``source`` add headers to every outbound call (tracing adds the trace context)."""
    if source not in _HEADER_SOURCES:
        _HEADER_SOURCES.append(source)


class OutboundSettings(EnvironmentSettings):
    outbound_connect_timeout_seconds: float = Field(default=2.0, gt=0)
    outbound_read_timeout_seconds: float = Field(default=5.0, gt=0)
    # The whole call: every attempt and every wait between them.
    outbound_total_timeout_seconds: float = Field(default=10.0, gt=0)
    outbound_max_connections: int = Field(default=20, ge=1, le=1000)
    outbound_retry_attempts: int = Field(default=3, ge=1, le=10)
    outbound_breaker_failures: int = Field(default=5, ge=1)
    outbound_breaker_recovery_seconds: float = Field(default=30.0, gt=0)
    # The upstream the example route calls (web: GET /outbound/example); unset: it answers 503.
    outbound_example_url: str | None = Field(default=None, pattern=r"^https?://\S+$")

    @model_validator(mode="after")
    def _budget_covers_one_attempt(self) -> Self:
        one_attempt = self.outbound_connect_timeout_seconds + self.outbound_read_timeout_seconds
        if self.outbound_total_timeout_seconds < one_attempt:
            raise ValueError(
                "OUTBOUND_TOTAL_TIMEOUT_SECONDS must be at least OUTBOUND_CONNECT_TIMEOUT_SECONDS "
                "+ OUTBOUND_READ_TIMEOUT_SECONDS: one attempt must fit in the budget"
            )
        return self

    @classmethod
    def load(cls, settings: Settings) -> Self:
        """Read the outbound settings, or raise ConfigError naming every invalid one."""
        return cls.from_environment()


class UpstreamFailure(Exception):
    """A call to ``upstream`` that did not succeed; ``retry_after``: when to try again, if known."""

    def __init__(self, upstream: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(f"{upstream}: {message}")
        self.upstream = upstream
        self.retry_after = retry_after


class UpstreamError(UpstreamFailure):
    """The upstream answered with an error status (after any retries)."""

    def __init__(self, upstream: str, response: httpx2.Response) -> None:
        super().__init__(upstream, f"answered {response.status_code}")
        self.response = response


class UpstreamTimeout(UpstreamFailure):
    """The call did not finish within its budget."""

    def __init__(self, upstream: str, seconds: float) -> None:
        super().__init__(upstream, f"no answer within {seconds:g} s")


class UpstreamUnavailable(UpstreamFailure):
    """The upstream could not be reached, or its circuit breaker is open."""

    def __init__(self, upstream: str, reason: str, retry_after: int | None = None) -> None:
        super().__init__(upstream, f"unavailable ({reason})", retry_after)


class _RetryableStatus(Exception):
    """An answer worth another attempt (429, 502, 503, 504), with the wait it asked for."""

    def __init__(self, response: httpx2.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response
        self.retry_after = retry_after_seconds(response.headers.get("retry-after"))


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None if absent or
    not understood."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


class OutboundClient:
    """The process's client for calls to other services (see the module docstring)."""

    def __init__(
        self,
        settings: OutboundSettings,
        request_id_header: str = "X-Request-ID",
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self._request_id_header = request_id_header
        self._transport = transport
        self._http: httpx2.AsyncClient | None = None
        self._breakers: AsyncCircuitBreakerFactory | None = None
        self._closed = False

    @property
    def is_closed(self) -> bool:
        return self._closed

    @property
    def pool_opened(self) -> bool:
        """Whether the first call has built the connection pool yet."""
        return self._http is not None

    async def close(self) -> None:
        """Close the pool (on shutdown); closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        if self._http is not None:
            await self._http.aclose()

    def _breaker_factory(self) -> AsyncCircuitBreakerFactory:
        """The circuit breakers of every upstream, made at the first call."""
        if self._breakers is None:
            from purgatory import AsyncCircuitBreakerFactory

            self._breakers = AsyncCircuitBreakerFactory(
                default_threshold=self.settings.outbound_breaker_failures,
                default_ttl=self.settings.outbound_breaker_recovery_seconds,
                # A peer asking to slow down is not a failing peer.
                exclude=[(_RetryableStatus, lambda exc: exc.response.status_code == 429)],
            )
            self._breakers.add_listener(_track_breaker_state)
        return self._breakers

    def _pool(self) -> httpx2.AsyncClient:
        """The connection pool, built at the first call rather than at start: building it loads
        the CA bundle into an SSL context (about 25 ms of CPU and 1 to 3 MiB per process,
        measured), which a replica that never calls out would pay at every start."""
        if self._closed:
            raise RuntimeError("the outbound client is closed (the service is shutting down)")
        if self._http is None:
            import httpx2

            settings = self.settings
            connections = settings.outbound_max_connections
            self._http = httpx2.AsyncClient(
                timeout=httpx2.Timeout(
                    connect=settings.outbound_connect_timeout_seconds,
                    read=settings.outbound_read_timeout_seconds,
                    write=settings.outbound_read_timeout_seconds,
                    pool=settings.outbound_connect_timeout_seconds,
                ),
                limits=httpx2.Limits(
                    max_connections=connections, max_keepalive_connections=connections
                ),
                transport=self._transport,
                follow_redirects=False,
            )
        return self._http

    async def request(
        self,
        upstream: str,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        idempotency_key: str | None = None,
    ) -> httpx2.Response:
        """One call to ``upstream`` (the name its breaker and metrics go by).

        Returns a response with a status below 400, or raises ``UpstreamError`` (an error
        status), ``UpstreamTimeout`` or ``UpstreamUnavailable``.
        """
        import httpx2
        import stamina
        from purgatory.domain.model import OpenedState

        method = method.upper()
        sent_headers = self._headers(headers, idempotency_key)
        safe_to_repeat = method in IDEMPOTENT_METHODS or idempotency_key is not None
        attempts = self.settings.outbound_retry_attempts if safe_to_repeat else 1
        budget = self.settings.outbound_total_timeout_seconds
        deadline = time.monotonic() + budget
        started = time.perf_counter()
        outcome = "ok"
        try:
            with anyio.fail_after(budget):
                retries = stamina.retry_context(
                    on=lambda exc: self._retry_decision(exc, deadline),
                    attempts=attempts,
                    timeout=budget,
                    wait_initial=0.1,
                    wait_max=2.0,
                )
                async for attempt in retries:
                    with attempt:
                        if attempt.num > 1:
                            RETRIES.labels(upstream).inc()
                        return await self._attempt(
                            upstream, method, url, sent_headers, json, content
                        )
        except _RetryableStatus as exc:
            outcome = "http_error"
            raise UpstreamError(upstream, exc.response) from None
        except UpstreamError:
            outcome = "http_error"
            raise
        except (TimeoutError, httpx2.TimeoutException):
            outcome = "timeout"
            raise UpstreamTimeout(upstream, budget) from None
        except OpenedState:
            outcome = "unavailable"
            recovery = math.ceil(self.settings.outbound_breaker_recovery_seconds)
            raise UpstreamUnavailable(upstream, "circuit open", retry_after=recovery) from None
        except httpx2.TransportError as exc:
            outcome = "unavailable"
            raise UpstreamUnavailable(upstream, type(exc).__name__) from None
        finally:
            REQUESTS.labels(upstream, outcome).inc()
            DURATION.labels(upstream).observe(time.perf_counter() - started)
        raise AssertionError("unreachable: the retry loop returns or raises")  # pragma: no cover

    def _headers(
        self, headers: Mapping[str, str] | None, idempotency_key: str | None
    ) -> dict[str, str]:
        sent = dict(headers or {})
        request_id = current_request_id()
        if request_id:
            sent.setdefault(self._request_id_header, request_id)
        if idempotency_key is not None:
            sent["Idempotency-Key"] = idempotency_key
        for source in _HEADER_SOURCES:
            source(sent)
        return sent

    async def _attempt(
        self,
        upstream: str,
        method: str,
        url: str,
        headers: dict[str, str],
        json: Any,
        content: bytes | None,
    ) -> httpx2.Response:
        breaker = await self._breaker_factory().get_breaker(upstream)
        async with breaker:
            response = await self._pool().request(
                method, url, headers=headers, json=json, content=content
            )
            if response.status_code in RETRYABLE_STATUSES:
                raise _RetryableStatus(response)
            if response.status_code >= 500:
                raise UpstreamError(upstream, response)  # counts as a failure of the peer
        if response.status_code >= 400:
            raise UpstreamError(upstream, response)  # the request's fault: not the peer's
        return response

    @staticmethod
    def _retry_decision(exc: Exception, deadline: float) -> bool | float:
        """stamina's backoff hook: whether to retry, and how long to wait when the peer said."""
        import httpx2

        if isinstance(exc, _RetryableStatus):
            if exc.retry_after is None:
                return True
            # A wait that does not fit in the budget: give up now rather than time out later.
            return exc.retry_after if time.monotonic() + exc.retry_after < deadline else False
        return isinstance(exc, httpx2.TransportError)


def _track_breaker_state(name: str, event_name: str, event: Any) -> None:
    """purgatory's listener: the open/closed gauge of each upstream, and a line per change."""
    if event_name != "state_changed":
        return
    opened = event.state == "opened"
    CIRCUIT_OPEN.labels(name).set(1 if opened else 0)
    logger.warning("circuit breaker changed", upstream=name, state=event.state)
