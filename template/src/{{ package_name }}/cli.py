"""Command line: ``python -m <package>`` serves HTTP (``serve`` is the default command)."""

import argparse
import sys
from collections.abc import Callable, Sequence

from . import SERVICE_NAME
from .config import ConfigError, Settings, load_settings
from .lifecycle import Lifecycle
from .observability.logs import configure_logging, get_logger
from .server import build_server

AppFactory = Callable[[Settings, Lifecycle], object]

EXIT_CONFIG_ERROR = 2


def serve(app_factory: AppFactory | None = None) -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        return _refuse(exc)
    configure_logging(settings.log_level, settings.log_format, settings.service_name)
    logger = get_logger(__name__)
    if not settings.is_production:
        logger.warning(
            "development profile: embedded defaults in use, not for production",
            app_env=settings.app_env,
            in_process_store=settings.store_url is None,
        )
    if app_factory is None:
        from .web.app import create_app

        app_factory = create_app
    lifecycle = Lifecycle(readiness_timeout=settings.readiness_timeout_seconds)
    try:
        app = app_factory(settings, lifecycle)
    except ConfigError as exc:
        return _refuse(exc)
    server = build_server(settings, app, lifecycle)
    logger.info("starting http server", host=settings.host, port=settings.port)
    server.run()
    logger.info("stopped")
    return 0


def _refuse(exc: ConfigError) -> int:
    print(f"{SERVICE_NAME}: refusing to start: {exc}", file=sys.stderr)
    return EXIT_CONFIG_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__package__}")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve HTTP on HOST:PORT (the default)")
    args = parser.parse_args(argv)
    if args.command in (None, "serve"):
        return serve()
    parser.error(f"unknown command {args.command}")
    return EXIT_CONFIG_ERROR
