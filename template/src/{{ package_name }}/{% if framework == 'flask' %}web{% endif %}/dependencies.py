"""Shared services for the views: the one place route modules take them from.

Flask has no injection: a view calls the getter it needs (``cache()``, ``settings()``...), which
reads the service the app factory put in ``current_app.extensions`` (so a test can swap one
through ``app.state``). Route modules import from here and never from each other, so deleting an
example route module breaks no other. A new service the routes need gets its getter here.

The session is Flask's own ``flask.session``, backed by the core's: ``SessionInterface`` below
hands Flask a mapping that reads the core session from the store on first use only (a route
that never touches it costs no store round trip), and the core's ASGI ``SessionMiddleware``
saves it before the response starts, on whichever replica answers next.
"""

from collections.abc import Callable, Iterator
from functools import wraps
from typing import Any, cast

from flask import Flask, Request, current_app, request
from flask import session as flask_session
from flask.sessions import SessionInterface as FlaskSessionInterface
from flask.sessions import SessionMixin
from werkzeug.exceptions import Unauthorized
from werkzeug.wrappers import Response

from ..asgi import Scope
from ..cache import Cache
from ..config import Settings
from ..flags import FeatureFlags
from ..outbound import OutboundClient
from ..security import LoginThrottle
from ..sessions import Session, request_session
from ..storage import ObjectStorage, StorageSettings
from . import portal


def service(name: str) -> Any:
    """The service the app factory registered under ``name``."""
    return current_app.extensions[name]


def settings() -> Settings:
    return cast(Settings, service("settings"))


def login_throttle() -> LoginThrottle:
    return cast(LoginThrottle, service("login_throttle"))


def cache() -> Cache:
    return cast(Cache, service("cache"))


def outbound() -> OutboundClient:
    return cast(OutboundClient, service("outbound"))


def feature_flags() -> FeatureFlags:
    return cast(FeatureFlags, service("feature_flags"))


def storage() -> ObjectStorage:
    return cast(ObjectStorage, service("storage"))


def storage_settings() -> StorageSettings:
    return cast(StorageSettings, service("storage_settings"))


def asgi_scope() -> Scope:
    """The ASGI scope of the current request (the WSGI bridge puts it in the environ)."""
    return cast(Scope, request.environ["asgi.scope"])


def core_session() -> Session:
    """The request's core session, read from the store on the first call of the request."""
    return cast(CoreBackedSession, flask_session).core


def current_user() -> str:
    """The logged-in user's name; 401 without one."""
    user = flask_session.get("user")
    if user is None:
        raise Unauthorized("not logged in")
    return str(user)


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """View decorator: 401 ``{"detail": "not logged in"}`` unless the session has a user."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        current_user()
        return view(*args, **kwargs)

    return guarded


class CoreBackedSession(SessionMixin):
    """``flask.session``: the core's session, loaded through the portal on first access."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self._core: Session | None = None

    @property
    def core(self) -> Session:
        if self._core is None:
            self._core = portal.run(request_session(self.scope))
        return self._core

    @property
    def loaded(self) -> bool:
        return self._core is not None

    def rotate(self) -> None:
        """A new session ID at privilege change (login): an ID known before is worthless."""
        self.core.rotate()

    def end(self) -> None:
        """Delete the session and expire its cookie (logout)."""
        self.core.end()

    def __getitem__(self, key: str) -> Any:
        return self.core[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.core[key] = value

    def __delitem__(self, key: str) -> None:
        del self.core[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.core)

    def __len__(self) -> int:
        return len(self.core)


class SessionInterface(FlaskSessionInterface):
    """Flask's session API over the core's sessions: nothing is read when the request opens,
    and nothing is written by Flask (the core's middleware saves, before the first byte)."""

    def open_session(self, app: Flask, request: Request) -> CoreBackedSession:
        return CoreBackedSession(request.environ["asgi.scope"])

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        return None
