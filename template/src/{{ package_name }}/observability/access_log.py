"""One access-log line per request (JSON, with the request ID), probes left out."""

import time

from ..asgi import ASGIApp, Message, Receive, Scope, Send
from .logs import log_request


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp, skip_paths: frozenset[str]) -> None:
        self.app = app
        self.skip_paths = skip_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.skip_paths:
            await self.app(scope, receive, send)
            return
        status = 500
        began = time.perf_counter()

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            client = scope.get("client")
            log_request(
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round((time.perf_counter() - began) * 1000, 2),
                client=client[0] if client else None,
            )
