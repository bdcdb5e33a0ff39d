"""The bare framework for ``stack_overhead``: FastAPI alone, answering the benchmarked routes.

Runs on the uvicorn settings the service's ``build_server`` uses by default, and imports
nothing of the service, so its start-up time and memory are the framework's own.

    python -m benchmarks.bare_app PORT
"""

import sys

import uvicorn
from fastapi import FastAPI

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


def main(port: int) -> None:
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_keep_alive=75,
        timeout_graceful_shutdown=20,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
        server_header=False,
        h11_max_incomplete_event_size=16 * 1024,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main(int(sys.argv[1]))
