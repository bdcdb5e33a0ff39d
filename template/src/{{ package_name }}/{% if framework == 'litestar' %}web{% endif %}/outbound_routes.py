"""Calls to other services from a route: the example, and the answers for a failing upstream.

``GET /outbound/example`` calls ``OUTBOUND_EXAMPLE_URL`` through the process's outbound client
(timeouts, retries when safe, a circuit breaker, the request ID passed on) and reports what it
got. Copy its shape for a real upstream: take ``outbound: OutboundDep``, name the upstream,
and let the errors become 502 (it answered with an error), 503 (unreachable, or its breaker is
open) and 504 (no answer within the budget).
"""

import time
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.exceptions import ServiceUnavailableException
from litestar.plugins import InitPlugin
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

logger = get_logger(__name__)
EXAMPLE_UPSTREAM = "example"

# What a failed call becomes: the upstream's error is a bad gateway, the rest unavailability.
ANSWERS: dict[type[UpstreamFailure], tuple[int, str]] = {
    UpstreamError: (502, "failed"),
    UpstreamTimeout: (504, "timed out"),
    UpstreamUnavailable: (503, "unavailable"),
}


class OutboundPlugin(InitPlugin):
    """The outbound client in ``app.state``, the failure answers and the example route."""

    def __init__(self, client: OutboundClient) -> None:
        self.client = client

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.state["outbound"] = self.client
        app_config.exception_handlers.update(dict.fromkeys(ANSWERS, upstream_failed))
        app_config.route_handlers.append(OutboundController)
        return app_config


def upstream_failed(
    request: Request[Any, Any, State], exc: UpstreamFailure
) -> Response[dict[str, str]]:
    status_code, what = ANSWERS[type(exc)]
    logger.warning("upstream call failed", upstream=exc.upstream, error=str(exc))
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return Response(
        {"detail": f"upstream {exc.upstream} {what}"}, status_code=status_code, headers=headers
    )


class UpstreamReport(BaseModel):
    upstream: str
    status: int
    elapsed_ms: float


class OutboundController(Controller):
    path = "/outbound"
    tags = ("outbound",)

    @get("/example")
    async def call_example_upstream(self, outbound: OutboundDep) -> UpstreamReport:
        url = outbound.settings.outbound_example_url
        if url is None:
            raise ServiceUnavailableException("no upstream configured: set OUTBOUND_EXAMPLE_URL")
        started = time.perf_counter()
        response = await outbound.request(EXAMPLE_UPSTREAM, "GET", url)
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        return UpstreamReport(
            upstream=EXAMPLE_UPSTREAM, status=response.status_code, elapsed_ms=elapsed_ms
        )
