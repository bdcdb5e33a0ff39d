"""Prometheus metrics for HTTP traffic, served at ``/metrics``.

Labels use the route template (``/items/{item_id}``), never the raw path, so cardinality stays
bounded; unmatched paths share one label, and so do methods outside the standard set
(``OTHER``); the status comes from the application, never from the client. Routes the framework
adds itself (``/docs``, ``/openapi.json``) carry no route object in the scope, only their
endpoint: they are labelled with the path of the route that owns that endpoint. Probe and
metrics requests are not counted: they would drown the real traffic.

With several server processes per container (WEB_CONCURRENCY), a scrape reaches one of them, so
each process keeps its samples in files under ``PROMETHEUS_MULTIPROC_DIR`` (the supervisor sets
it before the processes start) and ``/metrics`` reports the sum over every process, those that
ended included (counters never go back). Gauges declare how processes combine: requests in
progress add up over the live processes.
"""

import os
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client import generate_latest as _generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from ..asgi import ASGIApp, Message, Receive, Scope, Send

RouteResolver = Callable[[Scope], str | None]
"""Returns the matched route template for a handled request, or None when nothing matched."""

UNMATCHED_ROUTE = "<unmatched>"
# Any other method token (h11 accepts whatever a client sends) shares one label value.
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
OTHER_METHOD = "OTHER"


def method_label(method: str) -> str:
    """The request method as a label value: one of a fixed set, never what a client invents."""
    return method if method in KNOWN_METHODS else OTHER_METHOD


REQUESTS = Counter("http_requests_total", "HTTP requests handled.", ["method", "route", "status"])
DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from request start to the end of the response body.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
IN_PROGRESS = Gauge(
    "http_requests_in_progress",
    "HTTP requests being handled.",
    ["method"],
    multiprocess_mode="livesum",
)
# Read by prometheus_client when it is imported: set, every metric lives in a file there.
MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"


def endpoint_route(scope: Scope) -> str | None:
    """The path of the app's route whose endpoint handled the request, if any."""
    endpoint = scope.get("endpoint")
    app = scope.get("app")
    if endpoint is None or app is None:
        return None
    for route in getattr(app, "routes", ()):
        if getattr(route, "endpoint", None) is endpoint:
            return getattr(route, "path", None)
    return None


def render_latest() -> tuple[bytes, str]:
    """The exposition body and its content type: this process's metrics, or with several
    server processes the sum over all of them."""
    if os.environ.get(MULTIPROCESS_DIRECTORY):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return _generate_latest(registry), CONTENT_TYPE_LATEST
    return _generate_latest(REGISTRY), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    def __init__(
        self, app: ASGIApp, resolve_route: RouteResolver, skip_paths: frozenset[str]
    ) -> None:
        self.app = app
        self.resolve_route = resolve_route
        self.skip_paths = skip_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.skip_paths:
            await self.app(scope, receive, send)
            return
        method = method_label(scope["method"])
        status = 500  # stays 500 if the app raises before sending a response
        began = time.perf_counter()

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        in_progress = _in_progress_of(method)
        in_progress.inc()
        try:
            await self.app(scope, receive, record_status)
        finally:
            in_progress.dec()
            route = self.resolve_route(scope) or endpoint_route(scope) or UNMATCHED_ROUTE
            requests, duration = _counted_by(method, route, status)
            requests.inc()
            duration.observe(time.perf_counter() - began)


# Each metric's children per label values, looked up once and kept: a request pays a dict lookup,
# not prometheus_client's lock and checks. Bounded like the labels: methods, routes, statuses.
_in_progress: dict[str, Any] = {}
_counted: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def _in_progress_of(method: str) -> Any:
    child = _in_progress.get(method)
    if child is None:
        child = _in_progress[method] = IN_PROGRESS.labels(method)
    return child


def _counted_by(method: str, route: str, status: int) -> tuple[Any, Any]:
    """The request counter and the duration histogram of one method, route and status."""
    children = _counted.get((method, route, status))
    if children is None:
        children = (REQUESTS.labels(method, route, str(status)), DURATION.labels(method, route))
        _counted[(method, route, status)] = children
    return children
