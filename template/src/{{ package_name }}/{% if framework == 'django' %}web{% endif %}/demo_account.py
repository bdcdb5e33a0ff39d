"""The demo account kept in the session alone: the store-only mode.

One account, DEMO_USERNAME / DEMO_PASSWORD (development falls back to demo/demo; production has
none unless DEMO_PASSWORD is set). Logging in rotates the session ID and keeps the name in the
session (``"user"``); logging out ends the session. No user table is read or written.
"""

import hmac
from typing import cast

from django.http import HttpRequest

from ..config import Settings
from .sessions import CoreSession

# Where the store-only login keeps the user's name in the session.
USER_KEY = "user"


def credentials_match(settings: Settings, username: str, password: str) -> bool:
    """Whether these are the demo account's credentials (compared in constant time)."""
    expected = settings.demo_password_value()
    valid_user = hmac.compare_digest(username.encode(), settings.demo_username.encode())
    valid_password = expected is not None and hmac.compare_digest(
        password.encode(), expected.encode()
    )
    return valid_user and valid_password


def disabled(settings: Settings) -> bool:
    """Production without DEMO_PASSWORD has no demo login."""
    return settings.demo_password_value() is None


def session(request: HttpRequest) -> CoreSession:
    return cast(CoreSession, request.session)


async def login(request: HttpRequest, settings: Settings, username: str, password: str) -> bool:
    """Log in as the demo account if the credentials are its own; False if not."""
    if not credentials_match(settings, username, password):
        return False
    # A new ID at privilege change: an ID known before login is worthless after.
    await session(request).acycle_key()
    await session(request).aset(USER_KEY, username)
    return True


async def username(request: HttpRequest) -> str | None:
    name = await session(request).aget(USER_KEY)
    return None if name is None else str(name)


async def logout(request: HttpRequest) -> None:
    """The record deleted, the cookie expired."""
    await session(request).aflush()
