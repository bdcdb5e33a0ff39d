"""``migrate``: apply the database migrations, once per release, under an advisory lock.

Runs before a release rolls out (a Helm pre-install/pre-upgrade hook Job, a Compose one-shot
service), never at replica start. Safe to start twice: the second run waits for the lock, then
finds nothing to do. Logs JSON like the service; exits 0 on success, 1 when a migration failed,
2 when the configuration is refused.
"""

import argparse
import asyncio

from ..config import ConfigError, Settings
from ..db.engine import describe
from ..db.migrator import migrate
from ..db.settings import DatabaseSettings
from ..observability.logs import get_logger
from . import refuse_to_start, start

HELP = "apply database migrations (run once per release, before rolling out)"

EXIT_MIGRATION_FAILED = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--to",
        metavar="REVISION",
        default="head",
        help="upgrade to this revision (default: head, the newest)",
    )
    target.add_argument(
        "--downgrade",
        metavar="REVISION",
        help="downgrade to this revision instead ('base' removes every table); for rollbacks "
        "and tests",
    )


def _require_database(settings: Settings) -> None:
    """Development may serve without a database; migrating needs one."""
    if not DatabaseSettings.load(settings).configured:
        raise ConfigError(["DATABASE_URL is required to run migrations"])


def run(args: argparse.Namespace) -> int:
    try:
        settings = start(_require_database)
    except ConfigError as exc:
        return refuse_to_start(exc)
    database = DatabaseSettings.load(settings)
    logger = get_logger(__name__)
    downgrade = args.downgrade is not None
    target = args.downgrade if downgrade else args.to
    logger.info("migrating", direction="downgrade" if downgrade else "upgrade", target=target)
    try:
        result = asyncio.run(
            migrate(database, target, downgrade=downgrade, service_name=settings.service_name)
        )
    except Exception as exc:
        logger.exception("migration failed", error=describe(exc))
        return EXIT_MIGRATION_FAILED
    if result.changed:
        logger.info(
            "migrations applied",
            from_revision=",".join(result.before) or "base",
            to_revision=",".join(result.after) or "base",
            waited_for_lock_seconds=round(result.waited_for_lock_seconds, 3),
        )
    else:
        logger.info(
            "nothing to do: the database is already at the target revision",
            revision=",".join(result.after) or "base",
            waited_for_lock_seconds=round(result.waited_for_lock_seconds, 3),
        )
    return 0
