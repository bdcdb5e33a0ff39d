"""The migration lock: one migrator at a time, whichever tool changes the schema.

``python -m <package> migrate`` holds a session-level ``pg_advisory_lock`` on a fixed key derived
from the service name, on a connection of its own, for as long as it changes the schema. Two
migrators started together (a retried Job, two ``helm upgrade`` runs, a Compose one-shot next to
a Job) do not race: the second waits for the lock, then finds the schema at the target and has
nothing to do. The schema tool runs inside ``migration_lock`` (Alembic in ``migrator.py``, or the
web framework's own migrations) on a connection of its own with ``lock_timeout`` set.
"""

import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg

from .. import SERVICE_NAME
from ..observability.logs import get_logger
from .connect import connect, retry_while_transient
from .settings import DatabaseSettings

logger = get_logger(__name__)


def migration_lock_key(service_name: str = SERVICE_NAME) -> int:
    """The advisory lock key: a signed 64-bit number fixed for the service.

    Advisory locks are scoped to one database, so services in other databases never collide.
    """
    digest = hashlib.sha256(f"{service_name}:migrate".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True)
class MigrationResult:
    """What one ``migrate`` run found and left: the applied revisions (or migrations)."""

    before: tuple[str, ...]
    after: tuple[str, ...]
    waited_for_lock_seconds: float

    @property
    def changed(self) -> bool:
        return self.before != self.after


async def _acquire_lock(connection: asyncpg.Connection, key: int) -> float:
    began = time.monotonic()
    if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", key):
        logger.info("waiting for the migration lock: another migrator holds it", lock_key=key)
        await connection.execute("SELECT pg_advisory_lock($1)", key)
    waited = time.monotonic() - began
    logger.info("migration lock acquired", lock_key=key, waited_seconds=round(waited, 3))
    return waited


@asynccontextmanager
async def migration_lock(settings: DatabaseSettings, service_name: str) -> AsyncIterator[float]:
    """Wait until the database answers (bounded retries), then hold the migration lock for the
    block, on a connection of its own named ``<service>-migrate``; yields how long the lock was
    waited for.

    The key comes from the name the service was generated with, not from SERVICE_NAME, so
    migrators configured differently still exclude each other.
    """
    key = migration_lock_key()
    opened: list[asyncpg.Connection] = []

    async def open_connection() -> None:
        opened.append(await connect(settings, f"{service_name}-migrate"))

    await retry_while_transient(
        open_connection, settings.db_connect_retries, settings.db_connect_backoff_seconds
    )
    connection = opened[-1]
    try:
        waited = await _acquire_lock(connection, key)
        try:
            yield waited
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", key)
    finally:
        await connection.close()
