"""Probe semantics, independent of the web framework.

- startup: 200 once the application finished starting (lifespan startup ran), else 503.
- liveness: 200 while the process can answer at all. It never checks dependencies, so an outage of
  a shared store does not make Kubernetes restart every replica at once.
- readiness: 503 while draining for shutdown or when any dependency check fails, else 200.

The readiness body is public. With ``detailed`` (development) it carries each check's error and
timing; otherwise (production) only each check's name and state, as an error message may name an
internal address. A failed check's error is always logged.

``ProbeMiddleware`` answers the three probes itself, outside every other layer and before the
web framework routes anything: a kubelet polls each replica every few seconds, and a probe needs
none of the request ID, access log, metrics, sessions or routing the application's requests get.
Its responses carry the security headers (fixed ones: a probe carries no credentials) and
``Connection: close`` while draining. It answers on the public port only; on the internal port
the paths are unknown, like every public path there.
"""

import json
from collections.abc import Sequence
from typing import Any

from .asgi import ASGIApp, Receive, Scope, Send
from .lifecycle import CheckResult, Lifecycle
from .observability.logs import get_logger

logger = get_logger(__name__)

ProbeResponse = tuple[int, dict[str, Any]]

PROBE_PATHS = frozenset({"/startupz", "/livez", "/readyz"})


def startup(lifecycle: Lifecycle) -> ProbeResponse:
    if lifecycle.started:
        return 200, {"status": "started"}
    return 503, {"status": "starting"}


def liveness() -> ProbeResponse:
    return 200, {"status": "alive"}


async def readiness(lifecycle: Lifecycle, *, detailed: bool = False) -> ProbeResponse:
    if lifecycle.draining:
        return 503, {"status": "draining"}
    if not lifecycle.started:
        return 503, {"status": "starting"}
    results = await lifecycle.run_checks()
    for failed in (r for r in results if not r.ok):
        logger.warning("readiness check failed", check=failed.name, error=failed.detail)
    checks = {r.name: _check_body(r, detailed) for r in results}
    ready = all(r.ok for r in results)
    return (200 if ready else 503), {
        "status": "ready" if ready else "unavailable",
        "checks": checks,
    }


def _check_body(result: CheckResult, detailed: bool) -> dict[str, Any]:
    if not detailed:
        return {"ok": result.ok}
    return {"ok": result.ok, "detail": result.detail, "duration_ms": result.duration_ms}


Header = tuple[bytes, bytes]
PROBE_METHODS = frozenset({"GET", "HEAD"})


class ProbeMiddleware:
    """ASGI middleware: ``/startupz``, ``/livez`` and ``/readyz`` answered without the app."""

    def __init__(
        self,
        app: ASGIApp,
        lifecycle: Lifecycle,
        *,
        detailed: bool,
        internal_port: int,
        headers: Sequence[Header] = (),
    ) -> None:
        self.app = app
        self.lifecycle = lifecycle
        self.detailed = detailed
        self.internal_port = internal_port
        self.headers = [
            (b"content-type", b"application/json"),
            (b"cache-control", b"no-store"),
            *headers,
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if (
            path not in PROBE_PATHS
            or scope["type"] != "http"
            or (scope.get("server") or (None, None))[1] == self.internal_port
        ):
            await self.app(scope, receive, send)
            return
        if scope["method"] not in PROBE_METHODS:
            status, body = 405, {"detail": "Method Not Allowed"}
            extra = [(b"allow", b"GET, HEAD")]
        else:
            status, body = await self._probe(path)
            extra = []
        encoded = json.dumps(body, separators=(",", ":")).encode()
        headers = [*self.headers, *extra, (b"content-length", str(len(encoded)).encode())]
        if self.lifecycle.draining:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        body_bytes = b"" if scope["method"] == "HEAD" else encoded
        await send({"type": "http.response.body", "body": body_bytes})

    async def _probe(self, path: str) -> ProbeResponse:
        if path == "/livez":
            return liveness()
        if path == "/startupz":
            return startup(self.lifecycle)
        return await readiness(self.lifecycle, detailed=self.detailed)
