"""Interactive API documentation (``/docs``, ``/redoc``) and its schema (``/openapi.json``).

Off in production unless ``API_DOCS_ENABLED=true``: the schema maps every route for whoever asks.
Litestar builds the schema (``OpenAPIConfig``) and serves it at ``/openapi.json``. The pages
are this module's own, not Litestar's render plugins: they load Swagger UI and ReDoc from a CDN at
an exact version with a Subresource Integrity hash, so a browser runs only those reviewed bytes
and refuses anything else the CDN may serve. To upgrade, change the version and its hash
together (docs: "API documentation").
"""

import html
import json
from dataclasses import dataclass
from typing import Any

from litestar import Request, get
from litestar.datastructures import State
from litestar.enums import MediaType
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin

from ..config import Settings

OPENAPI_PATH = "/openapi.json"
CDN = "https://cdn.jsdelivr.net/npm"
# What FastAPI services report when they name no version of their own.
API_VERSION = "0.1.0"


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


def openapi_config(settings: Settings) -> OpenAPIConfig | None:
    """The schema's configuration for ``Litestar(openapi_config=...)``; None turns it off."""
    if not settings.api_docs_enabled_value:
        return None
    return OpenAPIConfig(
        title=settings.service_name,
        version=API_VERSION,
        # Litestar serves its schema under ``path``: the JSON itself is that path's root.
        path=OPENAPI_PATH,
        render_plugins=[JsonRenderPlugin(path="/", media_type=MediaType.JSON)],
    )


def route_handlers(settings: Settings) -> list[HTTPRouteHandler]:
    """``/docs`` and ``/redoc`` when the app serves its schema."""
    return [swagger_ui, redoc] if settings.api_docs_enabled_value else []


def _page_parts(request: Request[Any, Any, State]) -> tuple[str, str]:
    """The escaped page title and the schema's path (behind any proxy prefix)."""
    config = request.app.openapi_config
    title = html.escape(config.title if config else "")
    return title, str(request.scope.get("root_path", "")) + OPENAPI_PATH


@get("/docs", include_in_schema=False, media_type=MediaType.HTML)
async def swagger_ui(request: Request[Any, Any, State]) -> str:
    title, schema_path = _page_parts(request)
    options = json.dumps({"url": schema_path, "dom_id": "#swagger-ui"})
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title} - API</title>
<link rel="stylesheet" href="{SWAGGER_UI_CSS.url}" {SWAGGER_UI_CSS.attributes()}></head>
<body><div id="swagger-ui"></div>
<script src="{SWAGGER_UI_JS.url}" {SWAGGER_UI_JS.attributes()}></script>
<script>SwaggerUIBundle({options});</script>
</body></html>"""


@get("/redoc", include_in_schema=False, media_type=MediaType.HTML)
async def redoc(request: Request[Any, Any, State]) -> str:
    title, schema_path = _page_parts(request)
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title} - API</title></head>
<body><redoc spec-url="{html.escape(schema_path)}"></redoc>
<script src="{REDOC_JS.url}" {REDOC_JS.attributes()}></script>
</body></html>"""
