"""``celery-beat``: the Celery beat (RedBeat scheduler) that sends the scheduled jobs.

Run one, or more for availability: RedBeat's lock in Redis keeps every beat but one idle.
"""

import argparse

from ..config import ConfigError
from . import refuse_to_start, start

HELP = "run the Celery beat (RedBeat: only one beat sends, others wait)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Everything is configured through the environment: no options."""


def run(args: argparse.Namespace) -> int:
    from ..jobs.celery_app import celery_from_environment, require_broker

    try:
        settings = start(require_broker)
        app = celery_from_environment()
    except ConfigError as exc:
        return refuse_to_start(exc)
    app.start(["beat", "--loglevel", settings.log_level])
    return 0
