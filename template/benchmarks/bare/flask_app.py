"""Flask alone, answering the routes ``stack_overhead`` loads, served by uvicorn through a2wsgi
as the service is (each request on one of a2wsgi's worker threads)."""

import sys

from a2wsgi import WSGIMiddleware
from flask import Flask

from .server import serve

flask = Flask(__name__, static_folder=None)


@flask.get("/livez")
def livez() -> dict[str, str]:
    return {"status": "alive"}


@flask.get("/readyz")
def readyz() -> dict[str, str]:
    return {"status": "ready"}


@flask.get("/")
def index() -> dict[str, str | None]:
    return {"service": "bare", "request_id": None}


@flask.get("/session/whoami")
def whoami() -> dict[str, str]:
    return {"user": "demo"}


app = WSGIMiddleware(flask, workers=32)

if __name__ == "__main__":
    serve(app, int(sys.argv[1]))
