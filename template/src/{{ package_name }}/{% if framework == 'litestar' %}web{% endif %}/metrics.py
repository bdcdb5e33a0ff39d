"""``/metrics``: the Prometheus exposition, on the internal port only (``web/internal.py``).

The probes are not routes: the core's ``health.ProbeMiddleware`` answers them before the app.
"""

from litestar import Response, Router, get

from ..observability.metrics import render_latest


@get("/metrics")
async def metrics() -> Response[bytes]:
    body, content_type = render_latest()
    # As a header: a text/ media type would get a second charset appended.
    return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})


router = Router(path="/", route_handlers=[metrics], include_in_schema=False)
