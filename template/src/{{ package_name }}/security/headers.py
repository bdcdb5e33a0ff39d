"""Security headers on every response the application sends, errors included.

- ``X-Content-Type-Options: nosniff``: a browser never runs a JSON or uploaded body as script.
- ``X-Frame-Options: DENY`` and ``Content-Security-Policy: frame-ancestors 'none'``: no page can
  frame a response (clickjacking), in old and new browsers.
- ``Referrer-Policy: no-referrer``: URLs (signed URLs carry their signature) never leak onwards.
- ``Cache-Control: no-store`` on every response to a request that carries credentials (a
  ``Cookie`` or ``Authorization`` header) and on every response that sets a cookie: no shared or
  browser cache keeps a user's data or a session cookie.
- ``Strict-Transport-Security`` only when ``hsts_max_age_seconds`` > 0: TLS usually ends at the
  ingress, which owns the public host name and should send HSTS itself.

A header the route set itself is kept, except ``Cache-Control`` on a credentialed response.
An exception that escapes before the response started is answered here with a 500 that
carries the headers too, then re-raised, so the server still logs it.
"""

from ..asgi import ASGIApp, Message, Receive, Scope, Send

NO_STORE = (b"cache-control", b"no-store")
CREDENTIAL_HEADERS = frozenset({b"cookie", b"authorization"})
SERVER_ERROR = b"Internal Server Error"


def standard_headers(hsts_max_age_seconds: int = 0) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"content-security-policy", b"frame-ancestors 'none'"),
        (b"referrer-policy", b"no-referrer"),
    ]
    if hsts_max_age_seconds > 0:
        headers.append((b"strict-transport-security", f"max-age={hsts_max_age_seconds}".encode()))
    return headers


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, hsts_max_age_seconds: int = 0) -> None:
        self.app = app
        self.headers = standard_headers(hsts_max_age_seconds)

    def _with_headers(self, message: Message, credentialed: bool) -> Message:
        headers = list(message.get("headers", []))
        present = {name.lower() for name, _ in headers}
        headers += [(name, value) for name, value in self.headers if name not in present]
        if credentialed or b"set-cookie" in present:
            headers = [(k, v) for k, v in headers if k.lower() != b"cache-control"]
            headers.append(NO_STORE)
        message["headers"] = headers
        return message

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        credentialed = False
        for name, _ in scope["headers"]:
            if name in CREDENTIAL_HEADERS:
                credentialed = True
                break
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = self._with_headers(message, credentialed)
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if not started:
                await send_with_headers(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(SERVER_ERROR)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": SERVER_ERROR})
            raise
