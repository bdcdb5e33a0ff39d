"""Request IDs: taken from the incoming header when it is sane, otherwise generated.

The ID is returned in the response header, added to every log line written while the request is
handled (``logs.add_request_id`` reads it from this module's context variable), and available to
outbound calls through ``outbound_headers()`` so a request can be followed across services.
"""

import random
import re
from contextvars import ContextVar

from ..asgi import ASGIApp, Message, Receive, Scope, Send

# A client-supplied ID is echoed into logs and headers: accept only short, printable tokens.
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

_current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return _current_request_id.get()


def outbound_headers(header: str = "X-Request-ID") -> dict[str, str]:
    """Headers to pass on outbound HTTP calls so the next service logs the same request ID."""
    request_id = _current_request_id.get()
    return {header: request_id} if request_id else {}


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp, header: str = "X-Request-ID") -> None:
        self.app = app
        self.header = header
        self._header_key = header.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header_key = self._header_key
        incoming = b""
        for name, value in scope["headers"]:
            if name == header_key:
                incoming = value
        text = incoming.decode("latin-1")
        # 128 random bits as 32 hex digits. A correlation ID, not a secret (a client may send
        # its own), so the process's PRNG serves: no system call per request, unlike uuid4().
        request_id = text if _VALID_ID.match(text) else f"{random.getrandbits(128):032x}"
        id_header = (header_key, request_id.encode("latin-1"))
        token = _current_request_id.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != header_key]
                headers.append(id_header)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _current_request_id.reset(token)
