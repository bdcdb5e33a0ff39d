"""FastAPI alone, answering the routes ``stack_overhead`` loads."""

import sys

from fastapi import FastAPI

from .server import serve

app = FastAPI()


@app.get("/livez")
async def livez() -> dict[str, str]:
    return {"status": "alive"}


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ready"}


@app.get("/")
async def index() -> dict[str, str | None]:
    return {"service": "bare", "request_id": None}


@app.get("/session/whoami")
async def whoami() -> dict[str, str]:
    return {"user": "demo"}


if __name__ == "__main__":
    serve(app, int(sys.argv[1]))
