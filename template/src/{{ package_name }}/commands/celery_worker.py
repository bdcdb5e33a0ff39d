"""``celery-worker``: the Celery worker that runs the scheduled jobs (one per container).

Configured by the service's settings, logging JSON like the service. Health: the worker answers
``celery inspect ping`` (README: Scheduled jobs).
"""

import argparse

from ..config import ConfigError, load_settings
from ..observability.logs import configure_logging
from . import refuse_to_start

NAME = "celery-worker"
HELP = "run the Celery worker that executes scheduled jobs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hostname", help="worker node name (default: celery@<host name>)", default=None
    )


def run(args: argparse.Namespace) -> int:
    from ..jobs.celery_app import celery_from_environment

    try:
        settings = load_settings()
        app = celery_from_environment()
    except ConfigError as exc:
        return refuse_to_start(exc)
    configure_logging(settings.log_level, settings.log_format, settings.service_name)
    argv = ["worker", "--loglevel", settings.log_level, "--without-gossip", "--without-mingle"]
    if args.hostname:
        argv += ["--hostname", args.hostname]
    app.worker_main(argv)
    return 0
