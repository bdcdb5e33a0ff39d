"""The HTTP server: uvicorn, configured explicitly, with a drain phase on SIGTERM.

Plain uvicorn stops accepting connections the moment SIGTERM arrives, while the load balancer may
still be sending traffic, and waits without bound for in-flight requests. Here SIGTERM instead:

1. turns ``/readyz`` to 503 at once (the balancer takes the replica out of rotation),
2. keeps serving every request for ``SHUTDOWN_DRAIN_SECONDS``,
3. stops accepting, lets in-flight requests finish for up to ``SHUTDOWN_GRACE_SECONDS``,
4. runs the application's shutdown (closing connections) and exits 0.

One server listens on two ports (``listen``): PORT, public, and ADMIN_PORT, internal (metrics and
admin routes, see ``web.internal``). Both follow the same drain: the internal port keeps answering
scrapes while the public one drains, and both stop accepting together.

A repeated SIGTERM changes nothing; SIGINT (Ctrl-C) skips the drain, a second one also stops
waiting for in-flight requests.
"""

import signal
import socket
import threading
from types import FrameType

import uvicorn

from .config import Settings
from .lifecycle import Lifecycle
from .observability.logs import get_logger

logger = get_logger(__name__)


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, drain_seconds: float) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle
        self.drain_seconds = drain_seconds
        self._drain_timer: threading.Timer | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Runs in the signal handler: only set flags and start a timer here.
        self.lifecycle.begin_drain()
        if sig == signal.SIGINT:
            # Ctrl-C: skip the drain; a second Ctrl-C also stops waiting for in-flight requests.
            self.force_exit = self.should_exit
            self.should_exit = True
            return
        if self._drain_timer is not None:
            return  # already draining: a repeated SIGTERM (e.g. forwarded twice) changes nothing
        if self.drain_seconds == 0:
            self.should_exit = True
            return
        logger.info("shutdown requested, draining", signal=sig, drain_seconds=self.drain_seconds)
        self._drain_timer = threading.Timer(self.drain_seconds, self._stop_accepting)
        self._drain_timer.daemon = True
        self._drain_timer.start()

    def _stop_accepting(self) -> None:
        logger.info("drain delay over, finishing in-flight requests")
        self.should_exit = True


def build_server(settings: Settings, app: object, lifecycle: Lifecycle) -> DrainingServer:
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=settings.host,
        port=settings.port,
        workers=1,  # one process per container; replicas are the unit of scale
        lifespan="on",
        log_config=None,  # logging is configured by observability.logs
        access_log=False,  # the access log middleware writes it, with the request ID
        timeout_keep_alive=settings.keepalive_timeout_seconds,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        server_header=False,
    )
    return DrainingServer(config, lifecycle, settings.shutdown_drain_seconds)


def listen(settings: Settings) -> list[socket.socket]:
    """Bound sockets for ``DrainingServer.run(sockets=...)``: the public port, then the internal."""
    return [_bind(settings.host, settings.port), _bind(settings.host, settings.admin_port)]


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock
