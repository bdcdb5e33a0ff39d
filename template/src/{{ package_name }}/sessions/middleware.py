"""ASGI middleware: loads the session before the handler, saves it before the response starts.

Saving before the first byte goes out means the next request, on whichever replica, reads what this
one wrote. The session is in ``scope["session"]`` (``request.session`` in Starlette/FastAPI).
A store outage answers 503 instead of silently dropping the session.
"""

import json
from http.cookies import CookieError, SimpleCookie

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..observability.logs import get_logger
from ..store import StoreUnavailable
from .manager import SessionManager

logger = get_logger(__name__)

UNAVAILABLE_BODY = json.dumps({"detail": "session store unavailable"}).encode()


class SessionMiddleware:
    def __init__(self, app: ASGIApp, manager: SessionManager, skip_paths: frozenset[str]) -> None:
        self.app = app
        self.manager = manager
        self.skip_paths = skip_paths

    def _cookie(self, scope: Scope) -> str | None:
        for name, value in scope["headers"]:
            if name == b"cookie":
                try:
                    cookie = SimpleCookie(value.decode("latin-1"))
                except CookieError:
                    return None
                morsel = cookie.get(self.manager.cookie.name)
                return morsel.value if morsel else None
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.skip_paths:
            await self.app(scope, receive, send)
            return
        try:
            session = await self.manager.load(self._cookie(scope))
        except StoreUnavailable as exc:
            logger.warning("session load failed", error=str(exc))
            await _unavailable(send)
            return
        scope["session"] = session
        failed = False

        async def save_then_send(message: Message) -> None:
            nonlocal failed
            if failed:
                return  # the 503 already went out; drop the handler's response
            if message["type"] == "http.response.start":
                try:
                    cookies = await self.manager.save(session)
                except StoreUnavailable as exc:
                    logger.warning("session save failed", error=str(exc))
                    failed = True
                    await _unavailable(send)
                    return
                message["headers"] = [*message.get("headers", []), *cookies]
            await send(message)

        await self.app(scope, receive, save_then_send)


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
