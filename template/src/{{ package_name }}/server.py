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

The request head (request line and headers) is bounded while it is still coming in, on both
parsers uvicorn can use: h11 stops buffering at ``MAX_REQUEST_HEADER_BYTES``, and httptools, which
has no limit of its own, is counted here. Either way the client gets 431 and the connection is
closed, so a 100 MB header costs the replica no more than the limit and one socket read. The
exact count and size of the headers of each request are checked again by ``request_limits``.
"""

import asyncio
import gc
import importlib.util
import signal
import socket
import threading
from collections.abc import Callable
from types import FrameType

import uvicorn

from .config import Settings
from .lifecycle import Lifecycle
from .observability.logs import get_logger

logger = get_logger(__name__)

HEAD_TOO_LARGE_BODY = b"request header fields too large"
HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: " + str(len(HEAD_TOO_LARGE_BODY)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + HEAD_TOO_LARGE_BODY
)


def refuse_head(transport: asyncio.Transport, limit: int) -> None:
    logger.warning("request head too large, connection closed", limit_bytes=limit)
    transport.write(HEAD_TOO_LARGE)
    transport.close()


def bounded_h11_protocol() -> type[asyncio.Protocol]:
    # Built on demand, like the httptools one: a process imports only the parser it serves with.
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class BoundedH11Protocol(H11Protocol):
        """h11 refuses a head over ``h11_max_incomplete_event_size``: 431 where uvicorn says
        400."""

        def send_400_response(self, msg: str) -> None:
            limit = self.config.h11_max_incomplete_event_size
            buffered, _ = self.conn.trailing_data
            if self.conn.their_state is h11.ERROR and limit is not None and len(buffered) > limit:
                refuse_head(self.transport, limit)
                return
            super().send_400_response(msg)

    return BoundedH11Protocol


def bounded_httptools_protocol() -> type[asyncio.Protocol]:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        """Counts the bytes of an unfinished request head; past the limit: 431 and close.

        The limit is the one h11 applies (``h11_max_incomplete_event_size``), so both parsers
        take the same setting.
        """

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            self.head_bytes = 0
            self.reading_head = True
            self.messages = 0

        def on_headers_complete(self) -> None:
            self.reading_head = False
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self.reading_head = True
            self.head_bytes = 0
            self.messages += 1

        def data_received(self, data: bytes) -> None:
            counting = self.reading_head
            messages = self.messages
            super().data_received(data)
            # A read that finished a request and began the next is not counted: the next head
            # is then checked exactly by request_limits, and memory stays bounded by one read.
            if not (counting and self.reading_head and self.messages == messages):
                return
            self.head_bytes += len(data)
            limit = self.config.h11_max_incomplete_event_size
            if limit is not None and self.head_bytes > limit and not self.transport.is_closing():
                refuse_head(self.transport, limit)

    return BoundedHttpToolsProtocol


def http_protocol(parser: str) -> type[asyncio.Protocol]:
    """The uvicorn protocol class of ``parser`` (``auto``: httptools when installed, as uvicorn
    chooses), with the request head bounded."""
    if parser == "h11" or (parser == "auto" and importlib.util.find_spec("httptools") is None):
        return bounded_h11_protocol()
    return bounded_httptools_protocol()


class DrainingServer(uvicorn.Server):
    def __init__(
        self,
        config: uvicorn.Config,
        lifecycle: Lifecycle,
        drain_seconds: float,
        on_started: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle
        self.drain_seconds = drain_seconds
        self.on_started = on_started
        self._drain_timer: threading.Timer | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        # What the start built (modules, routes, clients) lives as long as the process: frozen,
        # no collection scans it again. The collector, paused for the start, runs from here.
        gc.freeze()
        gc.enable()
        if self.started and self.on_started is not None:
            self.on_started()  # the application started and the sockets are served

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


def build_server(
    settings: Settings,
    app: object,
    lifecycle: Lifecycle,
    on_started: Callable[[], None] | None = None,
) -> DrainingServer:
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=settings.host,
        port=settings.port,
        workers=1,  # this process; several (WEB_CONCURRENCY) are started by ``processes``
        lifespan="on",
        log_config=None,  # logging is configured by observability.logs
        access_log=False,  # the access log middleware writes it, with the request ID
        timeout_keep_alive=settings.keepalive_timeout_seconds,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        server_header=False,
        http=http_protocol(settings.http_parser),
        # No WebSocket routes: loading a WebSocket protocol would cost start-up time and memory
        # for nothing (an Upgrade request is then served as plain HTTP). Set "auto" to add some.
        ws="none",
        # Read by both parsers (see BoundedHttpToolsProtocol): the most a request head may take.
        h11_max_incomplete_event_size=settings.max_request_header_bytes,
    )
    return DrainingServer(config, lifecycle, settings.shutdown_drain_seconds, on_started)


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
