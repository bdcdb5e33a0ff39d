"""``celery-beat``: the Celery beat (RedBeat scheduler) that sends the scheduled jobs.

Run one, or more for availability: RedBeat's lock in Redis keeps every beat but one idle.
"""

import argparse

from ..config import ConfigError, load_settings
from ..observability.logs import configure_logging
from . import refuse_to_start

NAME = "celery-beat"
HELP = "run the Celery beat (RedBeat: only one beat sends, others wait)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Everything is configured through the environment: no options."""


def run(args: argparse.Namespace) -> int:
    from ..jobs.celery_app import celery_from_environment

    try:
        settings = load_settings()
        app = celery_from_environment()
    except ConfigError as exc:
        return refuse_to_start(exc)
    configure_logging(settings.log_level, settings.log_format, settings.service_name)
    app.start(["beat", "--loglevel", settings.log_level])
    return 0
