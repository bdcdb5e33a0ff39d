"""Probe semantics, independent of the web framework.

- startup: 200 once the application finished starting (lifespan startup ran), else 503.
- liveness: 200 while the process can answer at all. It never checks dependencies, so an outage of
  a shared store does not make Kubernetes restart every replica at once.
- readiness: 503 while draining for shutdown or when any dependency check fails, else 200.
"""

from typing import Any

from .lifecycle import Lifecycle

ProbeResponse = tuple[int, dict[str, Any]]

PROBE_PATHS = frozenset({"/startupz", "/livez", "/readyz"})


def startup(lifecycle: Lifecycle) -> ProbeResponse:
    if lifecycle.started:
        return 200, {"status": "started"}
    return 503, {"status": "starting"}


def liveness() -> ProbeResponse:
    return 200, {"status": "alive"}


async def readiness(lifecycle: Lifecycle) -> ProbeResponse:
    if lifecycle.draining:
        return 503, {"status": "draining"}
    if not lifecycle.started:
        return 503, {"status": "starting"}
    results = await lifecycle.run_checks()
    checks = {
        r.name: {"ok": r.ok, "detail": r.detail, "duration_ms": r.duration_ms} for r in results
    }
    ready = all(r.ok for r in results)
    return (200 if ready else 503), {
        "status": "ready" if ready else "unavailable",
        "checks": checks,
    }
