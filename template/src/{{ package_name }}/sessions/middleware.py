"""ASGI middleware: the session is read on first use, and saved before the response starts.

Nothing is read from the store until a handler asks for the session (``await
request_session(scope)``; routes take ``SessionDep`` from ``web/dependencies.py``), so a route
that never uses it costs no store round trip, cookie or not. Once read, the session is also in
``scope["session"]``. Saving before the first byte goes out means the next
request, on whichever replica, reads what this one wrote. A store outage answers 503 instead of
silently dropping the session.
"""

import json

from ..asgi import ASGIApp, Message, Receive, Scope, Send
from ..cookies import cookie_value
from ..observability.logs import get_logger
from ..store import StoreUnavailable
from .manager import Session, SessionManager

logger = get_logger(__name__)

UNAVAILABLE_BODY = json.dumps({"detail": "session store unavailable"}).encode()
LOADER_KEY = "session_loader"


class LazySession:
    """The session of one request, read from the store the first time it is asked for."""

    def __init__(self, manager: SessionManager, scope: Scope) -> None:
        self.manager = manager
        self.scope = scope
        self.session: Session | None = None

    async def get(self) -> Session:
        if self.session is None:
            cookie = cookie_value(self.scope["headers"], self.manager.cookie.name)
            self.session = await self.manager.load(cookie)
            self.scope["session"] = self.session
        return self.session


async def request_session(scope: Scope) -> Session:
    """The request's session, read from the store on the first call (StoreUnavailable if it
    cannot be). Needs SessionMiddleware around the route."""
    loader: LazySession = scope[LOADER_KEY]
    return await loader.get()


class SessionMiddleware:
    def __init__(self, app: ASGIApp, manager: SessionManager, skip_paths: frozenset[str]) -> None:
        self.app = app
        self.manager = manager
        self.skip_paths = skip_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.skip_paths:
            await self.app(scope, receive, send)
            return
        lazy = scope[LOADER_KEY] = LazySession(self.manager, scope)
        failed = False
        started = False

        async def save_then_send(message: Message) -> None:
            nonlocal failed, started
            if failed:
                return  # the 503 already went out; drop the handler's response
            if message["type"] == "http.response.start" and lazy.session is not None:
                try:
                    cookies = await self.manager.save(lazy.session)
                except StoreUnavailable as exc:
                    logger.warning("session save failed", error=str(exc))
                    failed = True
                    await _unavailable(send)
                    return
                message["headers"] = [*message.get("headers", []), *cookies]
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, save_then_send)
        except StoreUnavailable as exc:
            # A load that failed in an app without a handler of its own for StoreUnavailable.
            if started:
                raise
            logger.warning("session load failed", error=str(exc))
            await _unavailable(send)


async def _unavailable(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(UNAVAILABLE_BODY)).encode()),
                (b"retry-after", b"1"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": UNAVAILABLE_BODY})
