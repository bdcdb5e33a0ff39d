"""Probe semantics, independent of the web framework.

- startup: 200 once the application finished starting (lifespan startup ran), else 503.
- liveness: 200 while the process can answer at all. It never checks dependencies, so an outage of
  a shared store does not make Kubernetes restart every replica at once.
- readiness: 503 while draining for shutdown or when any dependency check fails, else 200.

The readiness body is public. With ``detailed`` (development) it carries each check's error and
timing; otherwise (production) only each check's name and state, as an error message may name an
internal address. A failed check's error is always logged.
"""

from typing import Any

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
