"""Serve a bare app the way the service's ``build_server`` does by default."""

from typing import Any

import uvicorn


def serve(app: Any, port: int) -> None:
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
