"""``/metrics``: the Prometheus exposition, on the internal port only (``web/internal.py``).

The probes are not routes: the core's ``health.ProbeMiddleware`` answers them before the app.
"""

from flask import Blueprint, Response

from ..observability.metrics import render_latest
from . import api_docs

blueprint = Blueprint("metrics", __name__)


@blueprint.get("/metrics")
@api_docs.hidden
def metrics() -> Response:
    body, content_type = render_latest()
    # As a header: a text/ media type would get a second charset appended.
    return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})
