"""Request-scoped dependencies: the one place route modules take shared services from.

Litestar injects by name: a handler parameter ``cache: CacheDep`` gets what ``PROVIDERS["cache"]``
returns, read from ``app.state`` on each request (so a test can swap a service there). Route
modules import from here and never from each other, so deleting an example route module breaks
no other. A new service the routes need gets its provider and alias here, and handlers take it
under the provider's name. Every provider is ``async``: none does blocking work, and Litestar
would otherwise run it in a worker thread on every request.
"""

from typing import Any, cast

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotAuthorizedException
from litestar.handlers import BaseRouteHandler
from litestar.params import SkipValidation

from ..asgi import Scope
from ..cache import Cache
from ..config import Settings
from ..flags import FeatureFlags
from ..outbound import OutboundClient
from ..security import LoginThrottle
from ..sessions import Session, request_session
from ..storage import ObjectStorage, StorageSettings

Connection = ASGIConnection[Any, Any, Any, State]


async def connection_session(connection: Connection) -> Session:
    """The request's session, read from the store here, on first use: requests that never ask
    for it never touch the store. The core's SessionMiddleware put its loader in the scope."""
    # Litestar types the scope as a TypedDict; the core takes any mutable mapping.
    return await request_session(cast(Scope, connection.scope))


async def provide_session(request: Request[Any, Any, State]) -> Session:
    return await connection_session(request)


async def require_login(connection: Connection, _handler: BaseRouteHandler) -> None:
    """Guard: 401 unless the session has a logged-in user."""
    session = await connection_session(connection)
    if session.get("user") is None:
        raise NotAuthorizedException("not logged in")


async def provide_user(session: NamedDependency[Session]) -> str:
    """The logged-in user's name; 401 without one."""
    user = session.get("user")
    if user is None:
        raise NotAuthorizedException("not logged in")
    return str(user)


async def provide_settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings


async def provide_login_throttle(state: State) -> LoginThrottle:
    throttle: LoginThrottle = state.login_throttle
    return throttle


async def provide_cache(state: State) -> Cache:
    cache: Cache = state.cache
    return cache


async def provide_outbound(state: State) -> OutboundClient:
    outbound: OutboundClient = state.outbound
    return outbound


async def provide_feature_flags(state: State) -> FeatureFlags:
    flags: FeatureFlags = state.feature_flags
    return flags


async def provide_storage(state: State) -> ObjectStorage:
    storage: ObjectStorage = state.storage
    return storage


async def provide_storage_settings(state: State) -> StorageSettings:
    settings: StorageSettings = state.storage_settings
    return settings


# Parameter name -> provider, for every handler of the application.
PROVIDERS: dict[str, Provide] = {
    "settings": Provide(provide_settings),
    "session": Provide(provide_session),
    "user": Provide(provide_user),
    "login_throttle": Provide(provide_login_throttle),
    "cache": Provide(provide_cache),
    "outbound": Provide(provide_outbound),
    "feature_flags": Provide(provide_feature_flags),
    "storage": Provide(provide_storage),
    "storage_settings": Provide(provide_storage_settings),
}

# A handler takes each one under its name above: ``session: SessionDep``.
SettingsDep = NamedDependency[Settings]
SessionDep = NamedDependency[Session]
UserDep = NamedDependency[str]
LoginThrottleDep = NamedDependency[LoginThrottle]
CacheDep = NamedDependency[Cache]
OutboundDep = NamedDependency[OutboundClient]
FeatureFlagsDep = NamedDependency[FeatureFlags]
# Litestar checks an injected value against its type, which a Protocol cannot answer.
StorageDep = NamedDependency[SkipValidation[ObjectStorage]]
StorageSettingsDep = NamedDependency[StorageSettings]
