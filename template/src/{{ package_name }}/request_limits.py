"""Bounds on what one request can make a replica hold: its body, and the size and number of its
headers.

Plain ASGI, no framework: it wraps the whole application, so every route and every method is
bounded, including routes added later. A body is counted while it streams in, whether its length
was declared (``Content-Length``, refused before the application runs) or not (chunked: refused
as soon as the count passes the limit, so at most the limit is ever read). Path prefixes may have
a larger limit of their own (the streamed uploads under ``/files``). The server bounds the raw
request head before parsing finishes (see ``server.py``); this middleware applies the exact
header count and size to every request, whatever server runs the application.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from .asgi import ASGIApp, Message, Receive, Scope, Send, send_json

KIB = 1024
MIB = 1024 * KIB


class RequestBodyTooLarge(Exception):
    """Raised by ``receive`` to the application once the body has passed its limit."""


@dataclass(frozen=True)
class RequestLimits:
    max_body_bytes: int = MIB
    max_header_bytes: int = 16 * KIB
    max_headers: int = 100
    # Path prefix -> body limit for the routes under it (the longest matching prefix wins).
    body_limits: Mapping[str, int] = field(default_factory=dict)

    def body_limit(self, path: str) -> int:
        matches = [prefix for prefix in self.body_limits if path.startswith(prefix)]
        return self.body_limits[max(matches, key=len)] if matches else self.max_body_bytes


def request_line_size(scope: Scope) -> int:
    """The size of the request line as it came in (``GET /path?query HTTP/1.1``)."""
    target = scope.get("raw_path") or scope.get("path", "").encode()
    query = scope.get("query_string") or b""
    return len(scope.get("method", "")) + len(target) + len(query) + len(" ?HTTP/1.1\r\n")


# HTTP/1 frames a body by Content-Length or Transfer-Encoding; without either there is none.
HTTP1_VERSIONS = frozenset({"1.0", "1.1"})


async def refuse(send: Send, status: int, detail: str) -> None:
    await send_json(send, status, json.dumps({"detail": detail}).encode(), close=True)


class RequestLimitsMiddleware:
    """431 for too many or too large headers, 413 for a body over its limit."""

    def __init__(self, app: ASGIApp, limits: RequestLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limits = self.limits
        headers = scope["headers"]
        # One pass over the headers: their size as sent (``name: value`` lines) and the body's.
        head_bytes = request_line_size(scope) + 2
        declared: int | None = None
        chunked = False
        for name, value in headers:
            head_bytes += len(name) + len(value) + 4
            lowered = name.lower()
            if lowered == b"content-length":
                if declared is None:
                    # An invalid or repeated length is the server's to refuse, not ours.
                    declared = int(value) if value.strip().isdigit() else None
            elif lowered == b"transfer-encoding":
                chunked = True
        if len(headers) > limits.max_headers or head_bytes > limits.max_header_bytes:
            await refuse(
                send,
                431,
                f"request headers exceed {limits.max_headers} fields or "
                f"{limits.max_header_bytes} bytes",
            )
            return
        limit = limits.body_limit(scope["path"])
        if declared is not None and declared > limit:
            await refuse(send, 413, f"request body exceeds {limit} bytes")
            return
        if not chunked and scope.get("http_version") in HTTP1_VERSIONS:
            # No body, or one the server ends at its declared length (within the limit): the
            # common case passes straight through, with nothing to count.
            await self.app(scope, receive, send)
            return

        too_large = f"request body exceeds {limit} bytes"
        received = 0
        exceeded = False
        started = False

        async def bounded_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise RequestBodyTooLarge(too_large)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise RequestBodyTooLarge(too_large)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # whatever the application answers to the refusal, the client gets 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, bounded_receive, guarded_send)
        except Exception:
            # The refusal, or what the application made of it (a framework may wrap it), is
            # answered 413; once a response is under way only closing the connection can end it.
            if not exceeded or started:
                raise
        if exceeded and not started:
            await refuse(send, 413, too_large)
