"""Interactive API documentation (``/docs``, ``/redoc``) and its schema (``/openapi.json``).

Django keeps no schema of its routes, so the document is built from the URL patterns when it is
asked for: every route is in it (a team's new routes too, with nothing to register), its path
parameters from the route's converters and its methods from ``routing.endpoint``. What the
patterns cannot tell (the JSON body, the answer's model, the status) a view declares with
``@api_docs.operation(body=..., response=...)``, as pydantic types whose JSON Schema goes into the
document's components.

Off in production unless ``API_DOCS_ENABLED=true``: the schema maps every route for whoever asks.
The pages load Swagger UI and ReDoc from a CDN at an exact version with a Subresource Integrity
hash, so a browser runs only those reviewed bytes and refuses anything else the CDN may serve.
To upgrade, change the version and its hash together (docs: "API documentation").
"""

import html
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, get_resolver, get_urlconf
from pydantic import BaseModel, TypeAdapter

from .dependencies import settings
from .routing import ROUTE_PARAMETER, Dispatch, endpoint, path_template

OPENAPI_PATH = "/openapi.json"
API_VERSION = "0.1.0"
CDN = "https://cdn.jsdelivr.net/npm"
CONVERTER_TYPES = {"int": "integer"}
SCHEMA_REFS = "#/components/schemas/{model}"

View = Callable[..., Any]


@dataclass(frozen=True)
class Asset:
    url: str
    integrity: str

    def attributes(self) -> str:
        return f'integrity="{self.integrity}" crossorigin="anonymous"'


SWAGGER_UI_VERSION = "5.35.0"
SWAGGER_UI_JS = Asset(
    f"{CDN}/swagger-ui-dist@{SWAGGER_UI_VERSION}/swagger-ui-bundle.js",
    "sha384-gjRm0bEPMeTmMh5jT2cHccIwCUZSTd8YC+j0d0sXw0MdGEfScduGpSyF3ZSSLkX9",
)
SWAGGER_UI_CSS = Asset(
    f"{CDN}/swagger-ui-dist@{SWAGGER_UI_VERSION}/swagger-ui.css",
    "sha384-WlYgdmXYOOBWL5apwjDEZwN+U3HmXSSu5R6V5aGxEcf7z+KuRNwBhoxKVN1i3D5I",
)
REDOC_VERSION = "2.5.4"
REDOC_JS = Asset(
    f"{CDN}/redoc@{REDOC_VERSION}/bundles/redoc.standalone.js",
    "sha384-w447zOpYfw/1Tv/5AK9NfHTlQIqE3RVR6KY62jCyy9zNDgO64cMwGGP1Fj0zJVf5",
)


@dataclass(frozen=True)
class Operation:
    """What a view declares for the document beyond its route."""

    body: Any = None
    response: Any = None
    status: int = 200
    query: dict[str, Any] = field(default_factory=dict)


def operation(
    *,
    body: Any = None,
    response: Any = None,
    status: int = 200,
    query: dict[str, Any] | None = None,
) -> Callable[[View], View]:
    """Declare a view's JSON body, answer and status (and query parameters: name -> type)."""

    def declare(view: View) -> View:
        view.openapi = Operation(body, response, status, query or {})  # type: ignore[attr-defined]
        return view

    return declare


def hidden(view: View) -> View:
    """Leave a view out of the document (the docs pages, /metrics)."""
    view.include_in_schema = False  # type: ignore[attr-defined]
    return view


@lru_cache(maxsize=256)
def _json_schema(annotation: Any) -> dict[str, Any]:
    return TypeAdapter(annotation).json_schema(ref_template=SCHEMA_REFS)


def schema_of(components: dict[str, Any], annotation: Any) -> dict[str, Any]:
    """The schema of a pydantic type, its models added to the document's components."""
    schema = dict(_json_schema(annotation))
    found = {**schema.pop("$defs", {})}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        found[annotation.__name__] = schema
        schema = {"$ref": SCHEMA_REFS.format(model=annotation.__name__)}
    for name, component in found.items():
        components.setdefault(name, component)
    return schema


def _patterns(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, Dispatch]]:
    """Every ``endpoint`` under ``patterns``, with its whole route."""
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _patterns(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern) and isinstance(pattern.callback, Dispatch):
            yield prefix + str(pattern.pattern), pattern.callback


def _describe(
    components: dict[str, Any], view: View, route: str, operation_id: str
) -> dict[str, Any]:
    declared: Operation = getattr(view, "openapi", Operation())
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": CONVERTER_TYPES.get(converter, "string")},
        }
        for converter, name in ROUTE_PARAMETER.findall(route)
    ]
    parameters += [
        {"name": name, "in": "query", "required": False, "schema": schema_of(components, kind)}
        for name, kind in declared.query.items()
    ]
    summary = (view.__doc__ or view.__name__.replace("_", " ")).strip().split("\n")[0]
    described: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "tags": [view.__module__.rpartition(".")[2].removesuffix("_routes")],
        "parameters": parameters,
        "responses": {str(declared.status): {"description": "Successful Response"}},
    }
    if declared.body is not None:
        described["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema_of(components, declared.body)}},
        }
    if declared.response is not None:
        described["responses"][str(declared.status)]["content"] = {
            "application/json": {"schema": schema_of(components, declared.response)}
        }
    return described


def document(urlconf: Any, title: str) -> dict[str, Any]:
    """The OpenAPI document of every route of ``urlconf``."""
    components: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    for route, dispatch in _patterns(get_resolver(urlconf).url_patterns):
        views = {m: v for m, v in dispatch.views.items() if getattr(v, "include_in_schema", True)}
        operations = paths.setdefault(path_template(route), {})
        for method, view in sorted(views.items()):
            name = view.__name__ if len(views) == 1 else f"{view.__name__}_{method.lower()}"
            operations[method.lower()] = _describe(components, view, route, name)
        if not operations:
            del paths[path_template(route)]
    described: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": API_VERSION},
        "paths": paths,
    }
    if components:
        described["components"] = {"schemas": components}
    return described


@hidden
async def openapi(request: HttpRequest) -> HttpResponse:
    body = json.dumps(document(get_urlconf(), settings(request).service_name))
    return HttpResponse(body, content_type="application/json")


def _page_parts(request: HttpRequest) -> tuple[str, str]:
    """The escaped page title and the schema's path (behind any proxy prefix)."""
    title = html.escape(settings(request).service_name)
    return title, request.META.get("SCRIPT_NAME", "") + OPENAPI_PATH


@hidden
async def swagger_ui(request: HttpRequest) -> HttpResponse:
    title, schema_path = _page_parts(request)
    options = json.dumps({"url": schema_path, "dom_id": "#swagger-ui"})
    return HttpResponse(
        f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title} - API</title>
<link rel="stylesheet" href="{SWAGGER_UI_CSS.url}" {SWAGGER_UI_CSS.attributes()}></head>
<body><div id="swagger-ui"></div>
<script src="{SWAGGER_UI_JS.url}" {SWAGGER_UI_JS.attributes()}></script>
<script>SwaggerUIBundle({options});</script>
</body></html>""",
        content_type="text/html; charset=utf-8",
    )


@hidden
async def redoc(request: HttpRequest) -> HttpResponse:
    title, schema_path = _page_parts(request)
    return HttpResponse(
        f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title} - API</title></head>
<body><redoc spec-url="{html.escape(schema_path)}"></redoc>
<script src="{REDOC_JS.url}" {REDOC_JS.attributes()}></script>
</body></html>""",
        content_type="text/html; charset=utf-8",
    )


# Added to an application's URLs only when its settings enable the docs (``app.py``).
urlpatterns = [
    endpoint("openapi.json", name="openapi", get=openapi),
    endpoint("docs", name="swagger-ui", get=swagger_ui),
    endpoint("redoc", name="redoc", get=redoc),
]
