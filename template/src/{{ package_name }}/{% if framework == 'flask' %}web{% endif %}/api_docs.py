"""Interactive API documentation (``/docs``, ``/redoc``) and its schema (``/openapi.json``).

Flask keeps no schema of its routes, so the document is built from the app's URL map when it is
asked for: every route is in it (a team's new routes too, with nothing to register), its path
parameters from the rule's converters. What the map cannot tell (the JSON body, the answer's
model, the status) a view declares with ``@api_docs.operation(body=..., response=...)``, as
pydantic types whose JSON Schema goes into the document's components. apispec assembles the
document (docs/decisions.md: "Flask's OpenAPI document: apispec over the URL map").

Off in production unless ``API_DOCS_ENABLED=true``: the schema maps every route for whoever asks.
The pages load Swagger UI and ReDoc from a CDN at an exact version with a Subresource Integrity
hash, so a browser runs only those reviewed bytes and refuses anything else the CDN may serve.
To upgrade, change the version and its hash together (docs: "API documentation").
"""

import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from apispec import APISpec
from flask import Flask, Response, current_app, request
from pydantic import BaseModel, TypeAdapter

from ..config import Settings
from .dependencies import settings as current_settings

OPENAPI_PATH = "/openapi.json"
API_VERSION = "0.1.0"
CDN = "https://cdn.jsdelivr.net/npm"
# The methods Flask adds to every rule by itself: not operations of the document.
IMPLICIT_METHODS = frozenset({"HEAD", "OPTIONS"})
# ``<converter:name>`` or ``<converter(args):name>`` or ``<name>`` in a Flask rule.
RULE_PARAMETER = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")
CONVERTER_TYPES = {"int": "integer", "float": "number"}
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
    """What a view declares for the document beyond its rule."""

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


@lru_cache(maxsize=1024)
def path_template(rule: str) -> str:
    """A Flask rule as a path template: ``/files/<path:key>`` is ``/files/{key}`` (kept per rule:
    the metrics label every request with it)."""
    return RULE_PARAMETER.sub(lambda match: "{" + match[2] + "}", rule)


@lru_cache(maxsize=256)
def _json_schema(annotation: Any) -> dict[str, Any]:
    return TypeAdapter(annotation).json_schema(ref_template=SCHEMA_REFS)


def schema_of(spec: APISpec, annotation: Any) -> dict[str, Any]:
    """The schema of a pydantic type, its models registered as the document's components."""
    schema = dict(_json_schema(annotation))
    components = {**schema.pop("$defs", {})}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        components[annotation.__name__] = schema
        schema = {"$ref": SCHEMA_REFS.format(model=annotation.__name__)}
    for name, component in components.items():
        if name not in spec.components.schemas:
            spec.components.schema(name, component)
    return schema


def _describe(spec: APISpec, view: View, rule: str, tag: str | None) -> dict[str, Any]:
    declared: Operation = getattr(view, "openapi", Operation())
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": CONVERTER_TYPES.get(converter or "", "string")},
        }
        for converter, name in RULE_PARAMETER.findall(rule)
    ]
    parameters += [
        {"name": name, "in": "query", "required": False, "schema": schema_of(spec, annotation)}
        for name, annotation in declared.query.items()
    ]
    described: dict[str, Any] = {
        "operationId": view.__name__,
        "summary": (view.__doc__ or view.__name__.replace("_", " ")).strip().split("\n")[0],
        "parameters": parameters,
        "responses": {str(declared.status): {"description": "Successful Response"}},
    }
    if tag:
        described["tags"] = [tag]
    if declared.body is not None:
        described["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema_of(spec, declared.body)}},
        }
    if declared.response is not None:
        described["responses"][str(declared.status)]["content"] = {
            "application/json": {"schema": schema_of(spec, declared.response)}
        }
    return described


def document(app: Flask, title: str) -> dict[str, Any]:
    """The OpenAPI document of every route of ``app``."""
    spec = APISpec(title=title, version=API_VERSION, openapi_version="3.1.0")
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if not getattr(view, "include_in_schema", True):
            continue
        tag = rule.endpoint.partition(".")[0] if "." in rule.endpoint else None  # blueprint
        operations = {
            method.lower(): _describe(spec, view, rule.rule, tag)
            for method in sorted((rule.methods or set()) - IMPLICIT_METHODS)
        }
        for method, described in operations.items():
            if len(operations) > 1:
                described["operationId"] = f"{described['operationId']}_{method}"
        spec.path(path=path_template(rule.rule), operations=operations)
    return spec.to_dict()


def install(app: Flask, settings: Settings) -> None:
    """Add ``/openapi.json``, ``/docs`` and ``/redoc`` when the settings enable the docs."""
    if not settings.api_docs_enabled_value:
        return
    app.add_url_rule(OPENAPI_PATH, "openapi", hidden(openapi))
    app.add_url_rule("/docs", "swagger_ui", hidden(swagger_ui))
    app.add_url_rule("/redoc", "redoc", hidden(redoc))


def openapi() -> Response:
    body = json.dumps(document(current_app, current_settings().service_name))
    return Response(body, mimetype="application/json")


def _page_parts() -> tuple[str, str]:
    """The escaped page title and the schema's path (behind any proxy prefix)."""
    title = html.escape(current_settings().service_name)
    return title, request.root_path + OPENAPI_PATH


def swagger_ui() -> Response:
    title, schema_path = _page_parts()
    options = json.dumps({"url": schema_path, "dom_id": "#swagger-ui"})
    return Response(
        f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title} - API</title>
<link rel="stylesheet" href="{SWAGGER_UI_CSS.url}" {SWAGGER_UI_CSS.attributes()}></head>
<body><div id="swagger-ui"></div>
<script src="{SWAGGER_UI_JS.url}" {SWAGGER_UI_JS.attributes()}></script>
<script>SwaggerUIBundle({options});</script>
</body></html>""",
        mimetype="text/html",
    )


def redoc() -> Response:
    title, schema_path = _page_parts()
    return Response(
        f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title} - API</title></head>
<body><redoc spec-url="{html.escape(schema_path)}"></redoc>
<script src="{REDOC_JS.url}" {REDOC_JS.attributes()}></script>
</body></html>""",
        mimetype="text/html",
    )
