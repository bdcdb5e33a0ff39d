"""Example session routes: log in (rotating the session ID), who am I, log out.

The one account comes from DEMO_USERNAME / DEMO_PASSWORD. Replace it with your identity provider
and keep the pattern: throttle before checking credentials, rotate on login, end on logout.
"""

import hmac

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from ..security import LoginThrottled
from .dependencies import LoginThrottleDep, SessionDep, SettingsDep

router = APIRouter(prefix="/session", tags=["session"])


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=256)


class Identity(BaseModel):
    user: str


@router.post("/login")
async def login(
    credentials: Credentials,
    session: SessionDep,
    settings: SettingsDep,
    throttle: LoginThrottleDep,
    request: Request,
) -> Identity:
    expected = settings.demo_password_value()
    if expected is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "demo login is disabled")
    client = request.client.host if request.client else "unknown"
    try:
        # Counted before the check: a right password is refused too while throttled.
        attempt = await throttle.attempt(credentials.username, client)
    except LoginThrottled as exc:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too many login attempts",
            headers={"Retry-After": str(exc.retry_after)},
        ) from None
    valid_user = hmac.compare_digest(credentials.username, settings.demo_username)
    valid_password = hmac.compare_digest(credentials.password.encode(), expected.encode())
    if not (valid_user and valid_password):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid credentials")
    await attempt.succeeded()
    session.rotate()  # a new ID at privilege change: an ID known before login is worthless after
    session["user"] = credentials.username
    return Identity(user=credentials.username)


@router.get("/whoami")
async def whoami(session: SessionDep) -> Identity:
    user = session.get("user")
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "not logged in")
    return Identity(user=user)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(session: SessionDep) -> Response:
    session.end()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
