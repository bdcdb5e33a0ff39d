"""``serve`` (the default): the HTTP service on HOST:PORT, metrics and admin on HOST:ADMIN_PORT.

``WEB_CONCURRENCY`` processes serve the two ports (default 1: this process). With more, this
process only supervises them (``processes``).
"""

import argparse
import functools
import gc
from collections.abc import Callable
from socket import socket

from ..config import ConfigError, Settings
from ..lifecycle import Lifecycle
from ..observability.logs import get_logger
from ..server import build_server, listen
from . import refuse_to_start, start

HELP = "serve HTTP on HOST:PORT, metrics and admin on ADMIN_PORT (the default command)"

AppFactory = Callable[[Settings, Lifecycle], object]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Everything is configured through the environment: no options."""


def run(args: argparse.Namespace) -> int:
    return serve()


def check_processes(settings: Settings) -> None:
    """The command's own check: what WEB_CONCURRENCY needs (``Settings.process_problems``)."""
    problems = settings.process_problems()
    if problems:
        raise ConfigError(problems)


def serve(app_factory: AppFactory | None = None) -> int:
    """Serve until SIGTERM or SIGINT; the exit code. ``app_factory`` builds the ASGI application
    (default: ``web.app.create_app``); with several processes it must be picklable (a
    module-level function), as each process builds its own."""
    try:
        settings = start(check_processes)
    except ConfigError as exc:
        return refuse_to_start(exc)
    logger = get_logger(__name__)
    if not settings.is_production:
        logger.warning(
            "development profile: embedded defaults in use, not for production",
            app_env=settings.app_env,
            in_process_store=settings.store_url is None,
        )
    if settings.web_concurrency == 1:
        return serve_in_this_process(settings, app_factory)
    try:
        sockets = listen(settings)
    except OSError as exc:
        logger.error("cannot listen", host=settings.host, error=str(exc))
        return 1
    logger.info(
        "starting http server",
        host=settings.host,
        port=settings.port,
        admin_port=settings.admin_port,
        processes=settings.web_concurrency,
    )
    # Imported only here: a process that serves alone (the default) never loads the supervisor.
    from ..processes import supervise

    target = functools.partial(serve_process, app_factory)
    return supervise(
        settings.web_concurrency, target, sockets, settings.web_process_timeout_seconds
    )


def serve_process(
    app_factory: AppFactory | None, sockets: list[socket], on_started: Callable[[], None]
) -> int:
    """One of several server processes: its own settings, logging and application."""
    try:
        settings = start(check_processes)
    except ConfigError as exc:
        return refuse_to_start(exc)
    return serve_in_this_process(settings, app_factory, sockets, on_started)


def serve_in_this_process(
    settings: Settings,
    app_factory: AppFactory | None,
    sockets: list[socket] | None = None,
    on_started: Callable[[], None] | None = None,
) -> int:
    # Building the application imports the web framework and every route: the collector is
    # paused until the server serves (DrainingServer.startup), as while the CLI imports.
    gc.disable()
    try:
        return _build_and_serve(settings, app_factory, sockets, on_started)
    finally:
        gc.enable()  # on if the server never started (a refused start, a port in use)


def _build_and_serve(
    settings: Settings,
    app_factory: AppFactory | None,
    sockets: list[socket] | None,
    on_started: Callable[[], None] | None,
) -> int:
    logger = get_logger(__name__)
    if app_factory is None:
        from ..web.app import create_app

        app_factory = create_app
    lifecycle = Lifecycle(readiness_timeout=settings.readiness_timeout_seconds)
    try:
        app = app_factory(settings, lifecycle)
    except ConfigError as exc:
        return refuse_to_start(exc)
    server = build_server(settings, app, lifecycle, on_started)
    if sockets is None:
        try:
            sockets = listen(settings)
        except OSError as exc:
            logger.error("cannot listen", host=settings.host, error=str(exc))
            return 1
        logger.info(
            "starting http server",
            host=settings.host,
            port=settings.port,
            admin_port=settings.admin_port,
        )
    server.run(sockets=sockets)
    logger.info("stopped")
    return 0
