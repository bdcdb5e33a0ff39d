"""Schema migrations (Alembic) under the migration lock: one migrator at a time.

``python -m <package> migrate`` runs this once per release, before the new version rolls out.
Two migrators started together (a retried Job, two ``helm upgrade`` runs, a Compose one-shot
next to a Job) do not race: the lock is a session-level ``pg_advisory_lock`` on a fixed key
derived from the service name, held on a connection of its own. The second migrator waits for
it, then finds the schema at the target revision and has nothing to do.

The migration connection sets ``lock_timeout`` (``DB_MIGRATION_LOCK_TIMEOUT_MS``): a DDL statement
that cannot get its table lock quickly fails (and the Job can retry) instead of making every
query of the running service queue behind it. Each revision commits on its own.
"""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from .. import SERVICE_NAME
from .migration_lock import MigrationResult, migration_lock, migration_lock_key
from .settings import DatabaseSettings

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"

__all__ = ["MigrationResult", "migrate", "migration_lock_key"]


def migration_engine(settings: DatabaseSettings, service_name: str) -> AsyncEngine:
    """Alembic's connection, opened for the run and named ``<service>-migrate`` in
    pg_stat_activity."""
    return create_async_engine(
        settings.url(),
        poolclass=NullPool,
        connect_args={
            "timeout": settings.db_connect_timeout_seconds,
            "server_settings": {"application_name": f"{service_name}-migrate"[:63]},
        },
    )


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
    engine = migration_engine(settings, service_name)
    try:
        async with (
            migration_lock(settings, service_name) as waited,
            engine.connect() as migration,
        ):
            await migration.execute(
                text("SELECT set_config('lock_timeout', :value, false)"),
                {"value": f"{settings.db_migration_lock_timeout_ms}ms"},
            )
            await migration.commit()
            before, after = await migration.run_sync(_run_alembic, target, downgrade)
    finally:
        await engine.dispose()
    return MigrationResult(before, after, waited)
