"""``/metrics``: the Prometheus exposition, on the internal port only (``web/internal.py``).

The probes are not routes: the core's ``health.ProbeMiddleware`` answers them before the app.
"""

from django.http import HttpRequest, HttpResponse

from ..observability.metrics import render_latest
from . import api_docs
from .routing import endpoint


@api_docs.hidden
async def metrics(request: HttpRequest) -> HttpResponse:
    body, content_type = render_latest()
    return HttpResponse(body, content_type=content_type, headers={"Cache-Control": "no-store"})


urlpatterns = [endpoint("metrics", name="metrics", get=metrics)]
