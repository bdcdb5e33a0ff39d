"""Probe and metrics endpoints. Cheap, unauthenticated, and left out of access logs and metrics."""

from typing import Any

from litestar import Request, Response, Router, get
from litestar.datastructures import State

from .. import health
from ..lifecycle import Lifecycle
from ..observability.metrics import render_latest

NO_STORE = {"Cache-Control": "no-store"}

Probe = Response[dict[str, Any]]


def _lifecycle(request: Request[Any, Any, State]) -> Lifecycle:
    lifecycle: Lifecycle = request.app.state.lifecycle
    return lifecycle


@get("/startupz")
async def startupz(request: Request[Any, Any, State]) -> Probe:
    status, body = health.startup(_lifecycle(request))
    return Response(body, status_code=status, headers=NO_STORE)


@get("/livez")
async def livez() -> Probe:
    status, body = health.liveness()
    return Response(body, status_code=status, headers=NO_STORE)


@get("/readyz")
async def readyz(request: Request[Any, Any, State]) -> Probe:
    # Check errors may name internal addresses: production shows names and states only.
    detailed = not request.app.state.settings.is_production
    status, body = await health.readiness(_lifecycle(request), detailed=detailed)
    return Response(body, status_code=status, headers=NO_STORE)


@get("/metrics")
async def metrics() -> Response[bytes]:
    body, content_type = render_latest()
    # As a header: a text/ media type would get a second charset appended.
    return Response(body, headers={"Content-Type": content_type, **NO_STORE})


router = Router(
    path="/", route_handlers=[startupz, livez, readyz, metrics], include_in_schema=False
)
