"""Example session routes: log in (rotating the session ID), who am I, log out.

The one account comes from DEMO_USERNAME / DEMO_PASSWORD. Replace it with your identity provider
and keep the pattern: throttle before checking credentials, rotate on login, end on logout.
``flask.session`` is the core's session (``dependencies.SessionInterface``): read from the shared
store on first use, saved by the core before the response starts.
"""

import hmac
from typing import Any

from flask import Blueprint, Response, request, session
from pydantic import BaseModel, Field
from werkzeug.exceptions import Forbidden, TooManyRequests, Unauthorized

from ..security import LoginThrottled
from . import api_docs, portal
from .dependencies import core_session, current_user, login_throttle, settings
from .validation import json_body

blueprint = Blueprint("session", __name__, url_prefix="/session")


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=256)


class Identity(BaseModel):
    user: str


@blueprint.post("/login")
@api_docs.operation(body=Credentials, response=Identity)
def login() -> dict[str, Any]:
    credentials: Credentials = json_body(Credentials)
    expected = settings().demo_password_value()
    if expected is None:
        raise Forbidden("demo login is disabled")
    client = request.remote_addr or "unknown"
    try:
        # Counted before the check: a right password is refused too while throttled.
        attempt = portal.run(login_throttle().attempt(credentials.username, client))
    except LoginThrottled as exc:
        raise TooManyRequests("too many login attempts", retry_after=exc.retry_after) from None
    valid_user = hmac.compare_digest(credentials.username, settings().demo_username)
    valid_password = hmac.compare_digest(credentials.password.encode(), expected.encode())
    if not (valid_user and valid_password):
        raise Unauthorized("invalid credentials")
    portal.run(attempt.succeeded())
    # A new ID at privilege change: an ID known before login is worthless after.
    core_session().rotate()
    session["user"] = credentials.username
    return Identity(user=credentials.username).model_dump()


@blueprint.get("/whoami")
@api_docs.operation(response=Identity)
def whoami() -> dict[str, Any]:
    return Identity(user=current_user()).model_dump()


@blueprint.post("/logout")
@api_docs.operation(status=204)
def logout() -> Response:
    core_session().end()
    return Response(status=204)
