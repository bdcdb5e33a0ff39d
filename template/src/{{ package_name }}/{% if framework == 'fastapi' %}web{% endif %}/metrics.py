"""``/metrics``: the Prometheus exposition, on the internal port only (``web/internal.py``).

The probes are not routes: the core's ``health.ProbeMiddleware`` answers them before the app.
"""

from fastapi import APIRouter, Response

from ..observability.metrics import render_latest

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def metrics() -> Response:
    body, content_type = render_latest()
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})
