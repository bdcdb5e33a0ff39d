"""Probe and metrics endpoints. Cheap, unauthenticated, and left out of access logs and metrics."""

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from .. import health
from ..lifecycle import Lifecycle
from ..observability.metrics import render_latest

router = APIRouter(include_in_schema=False)

NO_STORE = {"Cache-Control": "no-store"}


def _lifecycle(request: Request) -> Lifecycle:
    lifecycle: Lifecycle = request.app.state.lifecycle
    return lifecycle


@router.get("/startupz")
async def startupz(request: Request) -> JSONResponse:
    status, body = health.startup(_lifecycle(request))
    return JSONResponse(body, status_code=status, headers=NO_STORE)


@router.get("/livez")
async def livez() -> JSONResponse:
    status, body = health.liveness()
    return JSONResponse(body, status_code=status, headers=NO_STORE)


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    # Check errors may name internal addresses: production shows names and states only.
    detailed = not request.app.state.settings.is_production
    status, body = await health.readiness(_lifecycle(request), detailed=detailed)
    return JSONResponse(body, status_code=status, headers=NO_STORE)


@router.get("/metrics")
async def metrics() -> Response:
    body, content_type = render_latest()
    return Response(body, media_type=content_type, headers=NO_STORE)
