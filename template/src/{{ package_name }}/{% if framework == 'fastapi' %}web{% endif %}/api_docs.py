"""Interactive API documentation (``/docs``, ``/redoc``) and its schema (``/openapi.json``).

Off in production unless ``API_DOCS_ENABLED=true``: the schema maps every route for whoever asks.
The pages load Swagger UI and ReDoc from a CDN at an exact version with a Subresource Integrity
hash, so a browser runs only those reviewed bytes and refuses anything else the CDN may serve.
To upgrade, change the version and its hash together (docs: "API documentation").
"""

import html
import json
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from ..config import Settings

OPENAPI_PATH = "/openapi.json"
CDN = "https://cdn.jsdelivr.net/npm"


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


def openapi_url(settings: Settings) -> str | None:
    """The schema's path for ``FastAPI(openapi_url=...)``; None turns the schema off."""
    return OPENAPI_PATH if settings.api_docs_enabled_value else None


def install(app: FastAPI) -> None:
    """Add ``/docs`` and ``/redoc`` when the app serves its schema."""
    if app.openapi_url is None:
        return
    title = html.escape(app.title)

    def schema_path(request: Request) -> str:
        return str(request.scope.get("root_path", "")) + OPENAPI_PATH

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        options = json.dumps({"url": schema_path(request), "dom_id": "#swagger-ui"})
        return HTMLResponse(
            f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title} - API</title>
<link rel="stylesheet" href="{SWAGGER_UI_CSS.url}" {SWAGGER_UI_CSS.attributes()}></head>
<body><div id="swagger-ui"></div>
<script src="{SWAGGER_UI_JS.url}" {SWAGGER_UI_JS.attributes()}></script>
<script>SwaggerUIBundle({options});</script>
</body></html>"""
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        spec_url = html.escape(schema_path(request))
        return HTMLResponse(
            f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title} - API</title></head>
<body><redoc spec-url="{spec_url}"></redoc>
<script src="{REDOC_JS.url}" {REDOC_JS.attributes()}></script>
</body></html>"""
        )
