"""Example application routes. Replace or extend them; keep views free of process-local state."""

from django.http import HttpRequest, HttpResponse

from ..observability.logs import get_logger
from ..observability.request_id import current_request_id
from .dependencies import settings
from .errors import json_response
from .routing import endpoint

logger = get_logger(__name__)


async def index(request: HttpRequest) -> HttpResponse:
    # Debug, not info: the access log already writes one line for every request.
    logger.debug("index served")
    return json_response(
        {"service": settings(request).service_name, "request_id": current_request_id()}
    )


urlpatterns = [endpoint("", name="index", get=index)]
