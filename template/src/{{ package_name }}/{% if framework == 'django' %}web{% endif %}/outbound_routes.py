"""Calls to other services from a route: the example, and the answers for a failing upstream.

``GET /outbound/example`` calls ``OUTBOUND_EXAMPLE_URL`` through the process's outbound client
(timeouts, retries when safe, a circuit breaker, the request ID passed on) and reports what it
got. Copy its shape for a real upstream: take ``outbound(request)``, name the upstream, and let
the errors become 502 (it answered with an error), 503 (unreachable, or its breaker is open) and
504 (no answer within the budget).
"""

import time

from django.http import HttpRequest, HttpResponse
from pydantic import BaseModel

from ..observability.logs import get_logger
from ..outbound import UpstreamError, UpstreamFailure, UpstreamTimeout, UpstreamUnavailable
from . import api_docs
from .dependencies import outbound
from .errors import HttpError, handles, json_error, json_response
from .routing import endpoint

logger = get_logger(__name__)
EXAMPLE_UPSTREAM = "example"

# What a failed call becomes: the upstream's error is a bad gateway, the rest unavailability.
ANSWERS: dict[type[UpstreamFailure], tuple[int, str]] = {
    UpstreamError: (502, "failed"),
    UpstreamTimeout: (504, "timed out"),
    UpstreamUnavailable: (503, "unavailable"),
}


@handles(*ANSWERS)
def upstream_failed(exc: UpstreamFailure) -> HttpResponse:
    status, what = ANSWERS[type(exc)]
    logger.warning("upstream call failed", upstream=exc.upstream, error=str(exc))
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return json_error(f"upstream {exc.upstream} {what}", status, headers)


class UpstreamReport(BaseModel):
    upstream: str
    status: int
    elapsed_ms: float


@api_docs.operation(response=UpstreamReport)
async def call_example_upstream(request: HttpRequest) -> HttpResponse:
    client = outbound(request)
    url = client.settings.outbound_example_url
    if url is None:
        raise HttpError(503, "no upstream configured: set OUTBOUND_EXAMPLE_URL")
    started = time.perf_counter()
    response = await client.request(EXAMPLE_UPSTREAM, "GET", url)
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    report = UpstreamReport(
        upstream=EXAMPLE_UPSTREAM, status=response.status_code, elapsed_ms=elapsed_ms
    )
    return json_response(report.model_dump())


urlpatterns = [endpoint("outbound/example", name="outbound-example", get=call_example_upstream)]
