"""Example session routes: log in (rotating the session ID), who am I, log out.

The one account comes from DEMO_USERNAME / DEMO_PASSWORD. Replace it with your identity provider
and keep the pattern: throttle before checking credentials, rotate on login, end on logout.
"""

import hmac
from typing import Any

from litestar import Controller, Request, get, post, status_codes
from litestar.datastructures import State
from litestar.exceptions import (
    NotAuthorizedException,
    PermissionDeniedException,
    TooManyRequestsException,
)
from litestar.params import JSONBody
from pydantic import BaseModel, Field

from ..security import LoginThrottled
from .dependencies import LoginThrottleDep, SessionDep, SettingsDep


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=256)


class Identity(BaseModel):
    user: str


class SessionController(Controller):
    path = "/session"
    tags = ("session",)

    @post("/login", status_code=status_codes.HTTP_200_OK)
    async def login(
        self,
        data: JSONBody[Credentials],
        session: SessionDep,
        settings: SettingsDep,
        login_throttle: LoginThrottleDep,
        request: Request[Any, Any, State],
    ) -> Identity:
        expected = settings.demo_password_value()
        if expected is None:
            raise PermissionDeniedException("demo login is disabled")
        client = request.client.host if request.client else "unknown"
        try:
            # Counted before the check: a right password is refused too while throttled.
            attempt = await login_throttle.attempt(data.username, client)
        except LoginThrottled as exc:
            raise TooManyRequestsException(
                "too many login attempts", headers={"Retry-After": str(exc.retry_after)}
            ) from None
        valid_user = hmac.compare_digest(data.username, settings.demo_username)
        valid_password = hmac.compare_digest(data.password.encode(), expected.encode())
        if not (valid_user and valid_password):
            raise NotAuthorizedException("invalid credentials")
        await attempt.succeeded()
        # A new ID at privilege change: an ID known before login is worthless after.
        session.rotate()
        session["user"] = data.username
        return Identity(user=data.username)

    @get("/whoami")
    async def whoami(self, session: SessionDep) -> Identity:
        user = session.get("user")
        if user is None:
            raise NotAuthorizedException("not logged in")
        return Identity(user=user)

    @post("/logout", status_code=status_codes.HTTP_204_NO_CONTENT)
    async def logout(self, session: SessionDep) -> None:
        session.end()
