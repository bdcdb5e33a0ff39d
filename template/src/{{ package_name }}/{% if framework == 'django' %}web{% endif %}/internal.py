"""The internal port (``ADMIN_PORT``): metrics and the admin routes, never the public port.

The server listens on both ports in one process (``server.py``), so both drain together; this
middleware decides by the port a request arrived on. A path of the internal port asked on the
public port, or any other path asked on the internal port, answers 404 as if it did not exist.
The chart's Service exposes ``ADMIN_PORT`` to the cluster (Prometheus), and no Ingress or public
balancer ever routes to it.
"""

import json

from ..asgi import ASGIApp, Receive, Scope, Send, send_json

INTERNAL_PREFIXES = ("/metrics", "/jobs")
NOT_FOUND = json.dumps({"detail": "Not Found"}).encode()


def is_internal(path: str) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in INTERNAL_PREFIXES)


class InternalPortOnly:
    """ASGI middleware: internal paths on ``internal_port`` only, every other path elsewhere."""

    def __init__(self, app: ASGIApp, internal_port: int) -> None:
        self.app = app
        self.internal_port = internal_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            server = scope.get("server") or (None, None)
            on_internal_port = server[1] == self.internal_port
            if is_internal(scope["path"]) != on_internal_port:
                await send_json(send, 404, NOT_FOUND)
                return
        await self.app(scope, receive, send)
