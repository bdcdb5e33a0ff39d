"""Request-scoped dependencies: the one place route modules take shared services from.

Route modules import from here and never from each other, so deleting an example route module
breaks no other. A new service the routes need gets its getter and ``Annotated`` alias here.
Every getter is ``async``: none does blocking work, and FastAPI would run a plain ``def`` in a
worker thread on every request.
"""

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from ..cache import Cache
from ..config import Settings
from ..flags import FeatureFlags
from ..outbound import OutboundClient
from ..security import LoginThrottle
from ..sessions import Session, request_session
from ..storage import ObjectStorage, StorageSettings


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def current_session(request: Request) -> Session:
    """The request's session, read from the store here, on first use: routes without this
    dependency never touch the store."""
    return await request_session(request.scope)


async def require_login(session: Annotated[Session, Depends(current_session)]) -> str:
    """The logged-in user's name; 401 without one."""
    user = session.get("user")
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "not logged in")
    return str(user)


async def get_login_throttle(request: Request) -> LoginThrottle:
    throttle: LoginThrottle = request.app.state.login_throttle
    return throttle


async def get_cache(request: Request) -> Cache:
    cache: Cache = request.app.state.cache
    return cache


async def get_outbound(request: Request) -> OutboundClient:
    outbound: OutboundClient = request.app.state.outbound
    return outbound


async def get_feature_flags(request: Request) -> FeatureFlags:
    flags: FeatureFlags = request.app.state.feature_flags
    return flags


async def get_storage(request: Request) -> ObjectStorage:
    storage: ObjectStorage = request.app.state.storage
    return storage


async def get_storage_settings(request: Request) -> StorageSettings:
    settings: StorageSettings = request.app.state.storage_settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(current_session)]
UserDep = Annotated[str, Depends(require_login)]
LoginThrottleDep = Annotated[LoginThrottle, Depends(get_login_throttle)]
CacheDep = Annotated[Cache, Depends(get_cache)]
OutboundDep = Annotated[OutboundClient, Depends(get_outbound)]
FeatureFlagsDep = Annotated[FeatureFlags, Depends(get_feature_flags)]
StorageDep = Annotated[ObjectStorage, Depends(get_storage)]
StorageSettingsDep = Annotated[StorageSettings, Depends(get_storage_settings)]
