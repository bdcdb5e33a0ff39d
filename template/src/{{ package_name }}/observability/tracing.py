"""OpenTelemetry tracing: one span per request, named by its route, exported over OTLP/HTTP.

Configured with the standard ``OTEL_*`` variables (the SDK itself reads the sampler ones,
``OTEL_TRACES_SAMPLER`` and ``OTEL_TRACES_SAMPLER_ARG``). The provider is created inside the
serving process (after any fork), so no spans are lost to a parent process. Probes and
``/metrics`` are not traced.
"""

import re
from typing import Any, Literal, Protocol, Self

from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.propagate import inject
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import Span
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from ..asgi import ASGIApp, Message, Receive, Scope, Send
from ..config import ConfigError, EnvironmentSettings, Settings
from ..outbound import add_header_source
from .metrics import RouteResolver, method_label
from .request_id import current_request_id


class TracingSettings(EnvironmentSettings):
    model_config = SettingsConfigDict(env_prefix="OTEL_")

    exporter_otlp_endpoint: str | None = None
    # "otlp" sends spans to OTEL_EXPORTER_OTLP_ENDPOINT, "console" prints them, "none" disables.
    traces_exporter: Literal["otlp", "console", "none"] | None = None
    # Overrides SERVICE_NAME in traces only, as the OpenTelemetry convention expects.
    service_name: str | None = None
    # Read by the SDK itself; validated here so a typo fails the start instead of sampling all.
    traces_sampler: (
        Literal[
            "always_on",
            "always_off",
            "traceidratio",
            "parentbased_always_on",
            "parentbased_always_off",
            "parentbased_traceidratio",
        ]
        | None
    ) = None
    traces_sampler_arg: float | None = Field(default=None, ge=0.0, le=1.0)

    @property
    def exporter(self) -> str:
        if self.traces_exporter is not None:
            return self.traces_exporter
        return "otlp" if self.exporter_otlp_endpoint else "none"

    @classmethod
    def load(cls, settings: Settings) -> Self:
        tracing = cls.from_environment()
        if tracing.exporter == "otlp" and not tracing.exporter_otlp_endpoint:
            raise ConfigError(
                ["OTEL_EXPORTER_OTLP_ENDPOINT is required when OTEL_TRACES_EXPORTER=otlp"]
            )
        if (
            settings.is_production
            and tracing.traces_exporter is None
            and tracing.exporter == "none"
        ):
            raise ConfigError(
                [
                    "OTEL_EXPORTER_OTLP_ENDPOINT is required when APP_ENV=production "
                    "(or set OTEL_TRACES_EXPORTER=none to run without tracing)"
                ]
            )
        return tracing


def configure_tracing(tracing: TracingSettings, service_name: str) -> TracerProvider:
    # No sampler argument: the SDK applies OTEL_TRACES_SAMPLER(_ARG) (default: parent-based, on).
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: tracing.service_name or service_name})
    )
    if tracing.exporter == "otlp":
        # Imported only when spans are sent: the exporter brings protobuf and requests (about a
        # fifth of a start's imports), which a process that exports nothing never needs.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = tracing.exporter_otlp_endpoint or ""
        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces"))
        )
    elif tracing.exporter == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    return provider


def _tag_request_id(span: Span, scope: dict[str, Any]) -> None:
    request_id = current_request_id()
    if span.is_recording() and request_id:
        span.set_attribute("http.request_id", request_id)


class NameSpansByRoute:
    """Renames the request span to "METHOD /route/{param}" once routing has matched.

    The instrumentation names spans when the request arrives, before the route is known, so it
    can only use the raw path, whose IDs would make every span name unique.
    """

    def __init__(self, app: ASGIApp, resolve_route: RouteResolver) -> None:
        self.app = app
        self.resolve_route = resolve_route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        span = trace.get_current_span()

        async def rename_then_send(message: Message) -> None:
            # The span ends with the last body chunk: rename it when the response starts.
            if message["type"] == "http.response.start" and span.is_recording():
                route = self.resolve_route(scope)
                method = method_label(scope["method"])  # a client's invented method is OTHER
                if route:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                else:  # no route matched: the method alone, never the raw path
                    span.update_name(method)
            await send(message)

        await self.app(scope, receive, rename_then_send)


class SupportsMiddleware(Protocol):
    def add_middleware(self, middleware_class: Any, *args: Any, **kwargs: Any) -> None: ...


def _span_options(provider: TracerProvider, skip_paths: frozenset[str]) -> dict[str, Any]:
    """The instrumentation's options: one span per request, none for ``skip_paths``."""
    # The instrumentation matches these against the full URL (scheme://host/path?query).
    excluded = ",".join(f"//[^/]+{re.escape(path)}(\\?|$)" for path in sorted(skip_paths))
    return {
        "tracer_provider": provider,
        "excluded_urls": excluded,
        "exclude_spans": ["receive", "send"],  # one span per request, not one per ASGI message
        "server_request_hook": _tag_request_id,
    }


def install_tracing(
    app: SupportsMiddleware,
    provider: TracerProvider,
    skip_paths: frozenset[str],
    resolve_route: RouteResolver,
) -> None:
    """Add the tracing middleware to an ASGI application that supports ``add_middleware``, and
    pass the trace context on with every outbound call (``traceparent``)."""
    add_header_source(inject)
    app.add_middleware(NameSpansByRoute, resolve_route=resolve_route)  # inner: inside the span
    app.add_middleware(OpenTelemetryMiddleware, **_span_options(provider, skip_paths))


def trace_requests(
    app: ASGIApp,
    provider: TracerProvider,
    skip_paths: frozenset[str],
    resolve_route: RouteResolver,
) -> ASGIApp:
    """``app`` wrapped in the tracing middleware, for a framework that composes plain ASGI
    callables; like ``install_tracing``, passes the trace context on with outbound calls."""
    add_header_source(inject)
    named = NameSpansByRoute(app, resolve_route=resolve_route)  # inner: inside the span
    return OpenTelemetryMiddleware(named, **_span_options(provider, skip_paths))
