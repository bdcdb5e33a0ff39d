"""``celery-worker``: the Celery worker that runs the scheduled jobs (one per container).

Configured by the service's settings, logging JSON like the service. ``--ping`` is the liveness
check: it asks the worker of this host over the broker and exits 0 when it answers, 1 if not.
"""

import argparse
import socket

from ..config import ConfigError
from . import refuse_to_start, start

HELP = "run the Celery worker that executes scheduled jobs (--ping: its liveness check)"
PING_TIMEOUT_SECONDS = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hostname", help="worker node name (default: celery@<host name>)", default=None
    )
    parser.add_argument(
        "--ping",
        action="store_true",
        help="do not start a worker: exit 0 when the worker of this node name answers a ping",
    )


def run(args: argparse.Namespace) -> int:
    from ..jobs.celery_app import celery_from_environment, require_broker
    from ..jobs.runtime import prepare_job_process

    try:
        settings = start(require_broker)
        app = celery_from_environment()
    except ConfigError as exc:
        return refuse_to_start(exc)
    hostname = args.hostname or f"celery@{socket.gethostname()}"
    if args.ping:
        replies = app.control.ping(destination=[hostname], timeout=PING_TIMEOUT_SECONDS)
        return 0 if replies else 1
    # Before the worker forks its processes: each inherits the set-up (Django's ORM, with
    # Django and a database); connections are opened in the processes that use them.
    prepare_job_process(settings)
    argv = ["worker", "--loglevel", settings.log_level, "--without-gossip", "--without-mingle"]
    argv += ["--hostname", hostname]
    app.worker_main(argv)
    return 0
