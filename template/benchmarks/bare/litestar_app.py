"""Litestar alone, answering the routes ``stack_overhead`` loads."""

import sys

from litestar import Litestar, get

from .server import serve


@get("/livez")
async def livez() -> dict[str, str]:
    return {"status": "alive"}


@get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ready"}


@get("/")
async def index() -> dict[str, str | None]:
    return {"service": "bare", "request_id": None}


@get("/session/whoami")
async def whoami() -> dict[str, str]:
    return {"user": "demo"}


app = Litestar(route_handlers=[livez, readyz, index, whoami])

if __name__ == "__main__":
    serve(app, int(sys.argv[1]))
