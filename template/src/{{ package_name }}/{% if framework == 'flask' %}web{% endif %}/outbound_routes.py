"""Calls to other services from a route: the example, and the answers for a failing upstream.

``GET /outbound/example`` calls ``OUTBOUND_EXAMPLE_URL`` through the process's outbound client
(timeouts, retries when safe, a circuit breaker, the request ID passed on) and reports what it
got. Copy its shape for a real upstream: take ``outbound()``, name the upstream, and let the
errors become 502 (it answered with an error), 503 (unreachable, or its breaker is open) and
504 (no answer within the budget).
"""

import time
from typing import Any

from flask import Blueprint, Flask, Response, jsonify
from pydantic import BaseModel
from werkzeug.exceptions import ServiceUnavailable

from ..observability.logs import get_logger
from ..outbound import (
    OutboundClient,
    UpstreamError,
    UpstreamFailure,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from . import api_docs, portal
from .dependencies import outbound

logger = get_logger(__name__)
EXAMPLE_UPSTREAM = "example"

blueprint = Blueprint("outbound", __name__, url_prefix="/outbound")


# What a failed call becomes: the upstream's error is a bad gateway, the rest unavailability.
ANSWERS: dict[type[UpstreamFailure], tuple[int, str]] = {
    UpstreamError: (502, "failed"),
    UpstreamTimeout: (504, "timed out"),
    UpstreamUnavailable: (503, "unavailable"),
}


def install(app: Flask, client: OutboundClient) -> None:
    app.extensions["outbound"] = client
    for failure in ANSWERS:
        app.register_error_handler(failure, upstream_failed)
    app.register_blueprint(blueprint)


def upstream_failed(exc: UpstreamFailure) -> Response:
    status_code, what = ANSWERS[type(exc)]
    logger.warning("upstream call failed", upstream=exc.upstream, error=str(exc))
    response = jsonify({"detail": f"upstream {exc.upstream} {what}"})
    response.status_code = status_code
    if exc.retry_after:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


class UpstreamReport(BaseModel):
    upstream: str
    status: int
    elapsed_ms: float


@blueprint.get("/example")
@api_docs.operation(response=UpstreamReport)
def call_example_upstream() -> dict[str, Any]:
    client = outbound()
    url = client.settings.outbound_example_url
    if url is None:
        raise ServiceUnavailable("no upstream configured: set OUTBOUND_EXAMPLE_URL")
    started = time.perf_counter()
    response = portal.run(client.request(EXAMPLE_UPSTREAM, "GET", url))
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    return UpstreamReport(
        upstream=EXAMPLE_UPSTREAM, status=response.status_code, elapsed_ms=elapsed_ms
    ).model_dump()
