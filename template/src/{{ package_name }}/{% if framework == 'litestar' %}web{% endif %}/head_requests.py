"""HEAD answered as GET without the body, as HTTP asks and the FastAPI adapter does.

Litestar routes a HEAD request only to a handler declared for HEAD, and such a handler cannot
return a body. Here every GET route answers HEAD too: the request reaches Litestar as a GET (in
a copy of the scope: the server must still see HEAD), and the body of the answer is dropped,
its headers (Content-Length included) kept.
"""

from ..asgi import ASGIApp, Message, Receive, Scope, Send

# What Litestar's router writes into the scope that the middleware outside this one reads.
ROUTING_KEYS = ("path_template", "route_handler")


class HeadAsGet:
    """ASGI middleware: a HEAD request is handled as a GET whose body is never sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        as_get = {**scope, "method": "GET"}

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        try:
            await self.app(as_get, receive, headers_only)
        finally:
            scope.update({key: as_get[key] for key in ROUTING_KEYS if key in as_get})
