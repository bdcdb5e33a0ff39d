"""Django alone, answering the routes ``stack_overhead`` loads, served by uvicorn through
Django's own ASGI handler with async views, as the service is."""

import sys
from typing import Any

from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, JsonResponse
from django.urls import path

from .server import serve


async def livez(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "alive"})


async def readyz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ready"})


async def index(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"service": "bare", "request_id": None})


async def whoami(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"user": "demo"})


urlpatterns = [
    path("livez", livez),
    path("readyz", readyz),
    path("", index),
    path("session/whoami", whoami),
]

settings.configure(
    DEBUG=False,
    SECRET_KEY="bare",  # noqa: S106  # a benchmark's throw-away app: nothing is signed
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    USE_I18N=False,
    LOGGING_CONFIG=None,
)
django = ASGIHandler()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Django's handler for HTTP; the lifespan (which Django does not speak) answered here."""
    if scope["type"] != "lifespan":
        await django(scope, receive, send)
        return
    while (await receive())["type"] == "lifespan.startup":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


if __name__ == "__main__":
    serve(app, int(sys.argv[1]))
