"""Example session routes: log in (rotating the session ID), who am I, log out.

The one account comes from DEMO_USERNAME / DEMO_PASSWORD. Replace it with your identity provider
and keep the pattern: throttle before checking credentials, rotate on login, end on logout.
``request.session`` is the core's session (``sessions.py``): read from the shared store on first
use, saved by the core before the response starts.
"""

import hmac

from django.http import HttpRequest, HttpResponse
from pydantic import BaseModel, Field

from ..security import LoginThrottled
from . import api_docs
from .dependencies import current_user, login_throttle, session, settings
from .errors import HttpError, json_response
from .routing import endpoint
from .validation import json_body


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=256)


class Identity(BaseModel):
    user: str


@api_docs.operation(body=Credentials, response=Identity)
async def login(request: HttpRequest) -> HttpResponse:
    credentials: Credentials = await json_body(request, Credentials)
    expected = settings(request).demo_password_value()
    if expected is None:
        raise HttpError(403, "demo login is disabled")
    client = request.META.get("REMOTE_ADDR") or "unknown"
    try:
        # Counted before the check: a right password is refused too while throttled.
        attempt = await login_throttle(request).attempt(credentials.username, client)
    except LoginThrottled as exc:
        raise HttpError(
            429, "too many login attempts", {"Retry-After": str(exc.retry_after)}
        ) from None
    valid_user = hmac.compare_digest(credentials.username, settings(request).demo_username)
    valid_password = hmac.compare_digest(credentials.password.encode(), expected.encode())
    if not (valid_user and valid_password):
        raise HttpError(401, "invalid credentials")
    await attempt.succeeded()
    # A new ID at privilege change: an ID known before login is worthless after.
    await session(request).acycle_key()
    await session(request).aset("user", credentials.username)
    return json_response(Identity(user=credentials.username).model_dump())


@api_docs.operation(response=Identity)
async def whoami(request: HttpRequest) -> HttpResponse:
    return json_response(Identity(user=await current_user(request)).model_dump())


@api_docs.operation(status=204)
async def logout(request: HttpRequest) -> HttpResponse:
    await session(request).aflush()
    return HttpResponse(status=204)


urlpatterns = [
    endpoint("session/login", name="login", post=login),
    endpoint("session/whoami", name="whoami", get=whoami),
    endpoint("session/logout", name="logout", post=logout),
]
