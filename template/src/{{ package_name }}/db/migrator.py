"""Schema migrations (Alembic) under a PostgreSQL advisory lock: one migrator at a time.

``python -m <package> migrate`` runs this once per release, before the new version rolls out.
Two migrators started together (a retried Job, two ``helm upgrade`` runs, a Compose one-shot
next to a Job) do not race: the lock is a session-level ``pg_advisory_lock`` on a fixed key
derived from the service name, held on a connection of its own. The second migrator waits for
it, then finds the schema at the target revision and has nothing to do.

The migration connection sets ``lock_timeout`` (``DB_MIGRATION_LOCK_TIMEOUT_MS``): a DDL statement
that cannot get its table lock quickly fails (and the Job can retry) instead of making every
query of the running service queue behind it. Each revision commits on its own.
"""

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from .. import SERVICE_NAME
from ..observability.logs import get_logger
from .engine import wait_until_reachable
from .settings import DatabaseSettings

logger = get_logger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"


def migration_lock_key(service_name: str = SERVICE_NAME) -> int:
    """The advisory lock key: a signed 64-bit number fixed for the service.

    Advisory locks are scoped to one database, so services in other databases never collide.
    """
    digest = hashlib.sha256(f"{service_name}:migrate".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True)
class MigrationResult:
    before: tuple[str, ...]
    after: tuple[str, ...]
    waited_for_lock_seconds: float

    @property
    def changed(self) -> bool:
        return self.before != self.after


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, built in code: the URL comes from DATABASE_URL, never a file."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def current_revisions(connection: Connection) -> tuple[str, ...]:
    heads = MigrationContext.configure(connection).get_current_heads()
    if connection.in_transaction():
        connection.commit()  # leave no transaction open: Alembic then commits each revision
    return tuple(sorted(heads))


def _run_alembic(
    connection: Connection, target: str, downgrade: bool
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    before = current_revisions(connection)
    config = alembic_config(connection)
    if downgrade:
        command.downgrade(config, target)
    else:
        command.upgrade(config, target)
    if connection.in_transaction():
        connection.commit()
    return before, current_revisions(connection)


async def _acquire_lock(connection: AsyncConnection, key: int) -> float:
    began = time.monotonic()
    taken = await connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key})
    if not taken:
        logger.info("waiting for the migration lock: another migrator holds it", lock_key=key)
        await connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
    waited = time.monotonic() - began
    logger.info("migration lock acquired", lock_key=key, waited_seconds=round(waited, 3))
    return waited


async def migrate(
    settings: DatabaseSettings,
    target: str = "head",
    *,
    downgrade: bool = False,
    service_name: str = SERVICE_NAME,
) -> MigrationResult:
    """Upgrade (or downgrade) the schema to ``target`` while holding the migration lock.

    The lock key comes from the name the service was generated with, not from SERVICE_NAME, so
    migrators configured differently still exclude each other; ``service_name`` only names the
    connections (``<service>-migrate`` in pg_stat_activity).
    """
    key = migration_lock_key()
    engine = create_async_engine(
        settings.url(),
        poolclass=NullPool,  # two connections, each used once
        connect_args={
            "timeout": settings.db_connect_timeout_seconds,
            "server_settings": {"application_name": f"{service_name}-migrate"[:63]},
        },
    )
    try:
        await wait_until_reachable(
            engine, settings.db_connect_retries, settings.db_connect_backoff_seconds
        )
        async with engine.connect() as connection:
            lock = await connection.execution_options(isolation_level="AUTOCOMMIT")
            waited = await _acquire_lock(lock, key)
            try:
                async with engine.connect() as migration:
                    await migration.execute(
                        text("SELECT set_config('lock_timeout', :value, false)"),
                        {"value": f"{settings.db_migration_lock_timeout_ms}ms"},
                    )
                    await migration.commit()
                    before, after = await migration.run_sync(_run_alembic, target, downgrade)
            finally:
                await lock.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        await engine.dispose()
    return MigrationResult(before, after, waited)
