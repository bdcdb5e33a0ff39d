"""Calls to other services from a route: the example, and the answers for a failing upstream.

``GET /outbound/example`` calls ``OUTBOUND_EXAMPLE_URL`` through the process's outbound client
(timeouts, retries when safe, a circuit breaker, the request ID passed on) and reports what it
got. Copy its shape for a real upstream: take ``OutboundDep``, name the upstream, and let the
errors become 502 (it answered with an error), 503 (unreachable, or its breaker is open) and
504 (no answer within the budget).
"""

import time

from fastapi import APIRouter, FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ..observability.logs import get_logger
from ..outbound import (
    OutboundClient,
    UpstreamError,
    UpstreamFailure,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from .dependencies import OutboundDep
from .routers import add_router

logger = get_logger(__name__)
EXAMPLE_UPSTREAM = "example"

router = APIRouter(prefix="/outbound", tags=["outbound"])


# What a failed call becomes: the upstream's error is a bad gateway, the rest unavailability.
ANSWERS: dict[type[UpstreamFailure], tuple[int, str]] = {
    UpstreamError: (502, "failed"),
    UpstreamTimeout: (504, "timed out"),
    UpstreamUnavailable: (503, "unavailable"),
}


def install(app: FastAPI, client: OutboundClient) -> None:
    app.state.outbound = client
    for failure in ANSWERS:
        app.add_exception_handler(failure, upstream_failed)
    add_router(app, router)


async def upstream_failed(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, UpstreamFailure):
        raise exc
    status_code, what = ANSWERS[type(exc)]
    logger.warning("upstream call failed", upstream=exc.upstream, error=str(exc))
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return JSONResponse(
        {"detail": f"upstream {exc.upstream} {what}"}, status_code=status_code, headers=headers
    )


class UpstreamReport(BaseModel):
    upstream: str
    status: int
    elapsed_ms: float


@router.get("/example")
async def call_example_upstream(outbound: OutboundDep) -> UpstreamReport:
    url = outbound.settings.outbound_example_url
    if url is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "no upstream configured: set OUTBOUND_EXAMPLE_URL"
        )
    started = time.perf_counter()
    response = await outbound.request(EXAMPLE_UPSTREAM, "GET", url)
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    return UpstreamReport(
        upstream=EXAMPLE_UPSTREAM, status=response.status_code, elapsed_ms=elapsed_ms
    )
