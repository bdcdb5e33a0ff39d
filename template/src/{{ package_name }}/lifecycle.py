"""Process lifecycle shared by the server and the probes: started, draining, dependency checks.

Framework-agnostic. The server flips ``draining`` on SIGTERM; the probes read it. Later concerns
(cache, storage, database) register a readiness check each; liveness never looks at them.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .asgi import ASGIApp, Message, Receive, Scope, Send
from .observability.logs import get_logger

logger = get_logger(__name__)

ReadinessCheck = Callable[[], Awaitable[None]]
"""Raises (any exception) when the dependency it checks is not usable."""


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    duration_ms: float


@dataclass
class Lifecycle:
    readiness_timeout: float = 2.0
    started: bool = False
    draining: bool = False
    _checks: dict[str, ReadinessCheck] = field(default_factory=dict)

    def add_readiness_check(self, name: str, check: ReadinessCheck) -> None:
        self._checks[name] = check

    async def start(self) -> None:
        """Mark the application started, after one round of the readiness checks.

        Called at the end of the application's startup, before the server listens. The round
        opens a connection to each dependency then rather than on the first request: a balancer
        may send traffic to a new replica before its first check (HAProxy before 3.1 does, for a
        server it finds through DNS), and a first connection made under load can outlast the
        store's timeout. A failed check does not stop the start: it is logged, and readiness
        keeps reporting it until the dependency answers.
        """
        for result in await self.run_checks():
            if not result.ok:
                logger.warning(
                    "dependency unavailable at start", check=result.name, error=result.detail
                )
        self.started = True

    def begin_drain(self) -> None:
        self.draining = True

    async def run_checks(self) -> list[CheckResult]:
        """Run every readiness check concurrently, each bounded by the readiness timeout."""
        names = list(self._checks)
        return list(await asyncio.gather(*(self._run_one(name) for name in names)))

    async def _run_one(self, name: str) -> CheckResult:
        began = time.monotonic()
        try:
            await asyncio.wait_for(self._checks[name](), timeout=self.readiness_timeout)
        except TimeoutError:
            detail, ok = f"timed out after {self.readiness_timeout:g}s", False
        except Exception as exc:  # any failure means "not ready", with the reason in the body
            detail, ok = f"{type(exc).__name__}: {exc}"[:200], False
        else:
            detail, ok = "ok", True
        return CheckResult(name, ok, detail, round((time.monotonic() - began) * 1000, 2))


class CloseConnectionsWhileDraining:
    """ASGI middleware: while draining, answer with ``Connection: close``.

    Clients and balancers that reuse keep-alive connections then reconnect, and their next request
    lands on a replica that is not going away.
    """

    def __init__(self, app: ASGIApp, lifecycle: Lifecycle) -> None:
        self.app = app
        self.lifecycle = lifecycle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_maybe_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and self.lifecycle.draining:
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"
                ]
                headers.append((b"connection", b"close"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_maybe_closing)
