"""OpenTelemetry tracing: one span per request, exported over OTLP/HTTP.

Configured with the standard ``OTEL_*`` variables. The provider is created inside the serving
process (after any fork), so no spans are lost to a parent process. Probes and ``/metrics`` are
not traced.
"""

import re
from typing import Any, Literal, Self

from fastapi import FastAPI
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..config import ConfigError, Settings
from .request_id import current_request_id


class TracingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OTEL_", case_sensitive=False, extra="ignore")

    exporter_otlp_endpoint: str | None = None
    # "otlp" sends spans to OTEL_EXPORTER_OTLP_ENDPOINT, "console" prints them, "none" disables.
    traces_exporter: Literal["otlp", "console", "none"] | None = None
    traces_sampler_ratio: float = Field(default=1.0, ge=0.0, le=1.0)

    @property
    def exporter(self) -> str:
        if self.traces_exporter is not None:
            return self.traces_exporter
        return "otlp" if self.exporter_otlp_endpoint else "none"

    @classmethod
    def load(cls, settings: Settings) -> Self:
        try:
            tracing = cls()
        except ValidationError as exc:
            raise ConfigError(
                [f"OTEL_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()]
            ) from None
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
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: service_name}),
        sampler=ParentBased(TraceIdRatioBased(tracing.traces_sampler_ratio)),
    )
    if tracing.exporter == "otlp":
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


def install_tracing(app: FastAPI, provider: TracerProvider, skip_paths: frozenset[str]) -> None:
    # The instrumentation matches these against the full URL (scheme://host/path?query).
    excluded = ",".join(f"//[^/]+{re.escape(path)}(\\?|$)" for path in sorted(skip_paths))
    app.add_middleware(
        OpenTelemetryMiddleware,
        tracer_provider=provider,
        excluded_urls=excluded,
        server_request_hook=_tag_request_id,
    )
