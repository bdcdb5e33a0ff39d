"""Shared services for the views: the one place route modules take them from.

A view calls the getter it needs with its request (``cache(request)``, ``settings(request)``...),
which reads the service the app factory put in the application's ``state`` (so a test can swap
one through ``app.state``). Route modules import from here and never from each other, so deleting
an example route module breaks no other. A new service the routes need gets its getter here.

The session is Django's ``request.session``, backed by the core's (``sessions.py``): read from
the shared store on first use only, saved by the core before the response starts.
"""

from collections.abc import Awaitable, Callable
from functools import wraps
from types import SimpleNamespace
from typing import Any, cast

from django.http import HttpRequest
from django.http.response import HttpResponseBase

from ..cache import Cache
from ..config import Settings
from ..flags import FeatureFlags
from ..outbound import OutboundClient
from ..security import LoginThrottle
from ..storage import ObjectStorage, StorageSettings
from .errors import HttpError
from .routing import asgi_scope
from .sessions import CoreSession

# Where the application's state is in each request's ASGI scope.
STATE_KEY = "service_state"

View = Callable[..., Awaitable[HttpResponseBase]]


def state(request: HttpRequest) -> SimpleNamespace:
    """The services of the application answering ``request`` (``app.state``)."""
    return cast(SimpleNamespace, asgi_scope(request)[STATE_KEY])


def service(request: HttpRequest, name: str) -> Any:
    """The service the app factory registered under ``name``."""
    return getattr(state(request), name)


def settings(request: HttpRequest) -> Settings:
    return cast(Settings, service(request, "settings"))


def login_throttle(request: HttpRequest) -> LoginThrottle:
    return cast(LoginThrottle, service(request, "login_throttle"))


def cache(request: HttpRequest) -> Cache:
    return cast(Cache, service(request, "cache"))


def outbound(request: HttpRequest) -> OutboundClient:
    return cast(OutboundClient, service(request, "outbound"))


def feature_flags(request: HttpRequest) -> FeatureFlags:
    return cast(FeatureFlags, service(request, "feature_flags"))


def storage(request: HttpRequest) -> ObjectStorage:
    return cast(ObjectStorage, service(request, "storage"))


def storage_settings(request: HttpRequest) -> StorageSettings:
    return cast(StorageSettings, service(request, "storage_settings"))


def session(request: HttpRequest) -> CoreSession:
    """``request.session``: the core's session behind Django's session API."""
    return cast(CoreSession, cast(Any, request).session)


async def current_user(request: HttpRequest) -> str:
    """The logged-in user's name; 401 without one."""
    # accounts.py takes its services from here: imported when first needed.
    from .accounts import current_username

    user = await current_username(request)
    if user is None:
        raise HttpError(401, "not logged in")
    return str(user)


def login_required(view: View) -> View:
    """View decorator: 401 ``{"detail": "not logged in"}`` unless the session has a user."""

    @wraps(view)
    async def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        await current_user(request)
        return await view(request, *args, **kwargs)

    return guarded
