"""Example session routes: log in (rotating the session ID), who am I, log out.

Who may log in is ``accounts.py``'s decision. Keep the pattern: throttle before checking
credentials, rotate on login, end on logout. ``request.session`` is the core's session
(``sessions.py``): read from the shared store on first use, saved by the core before the
response starts.
"""

from django.http import HttpRequest, HttpResponse
from pydantic import BaseModel, Field

from ..security import LoginThrottled
from . import accounts, api_docs
from .dependencies import current_user, login_throttle
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
    if accounts.login_disabled(request, credentials.username):
        raise HttpError(403, "demo login is disabled")
    client = request.META.get("REMOTE_ADDR") or "unknown"
    try:
        # Counted before the check: a right password is refused too while throttled.
        attempt = await login_throttle(request).attempt(credentials.username, client)
    except LoginThrottled as exc:
        raise HttpError(
            429, "too many login attempts", {"Retry-After": str(exc.retry_after)}
        ) from None
    user = await accounts.login(request, credentials.username, credentials.password)
    if user is None:
        raise HttpError(401, "invalid credentials")
    await attempt.succeeded()
    return json_response(Identity(user=user).model_dump())


@api_docs.operation(response=Identity)
async def whoami(request: HttpRequest) -> HttpResponse:
    return json_response(Identity(user=await current_user(request)).model_dump())


@api_docs.operation(status=204)
async def logout(request: HttpRequest) -> HttpResponse:
    await accounts.logout(request)
    return HttpResponse(status=204)


urlpatterns = [
    endpoint("session/login", name="login", post=login),
    endpoint("session/whoami", name="whoami", get=whoami),
    endpoint("session/logout", name="logout", post=logout),
]
