"""PostgreSQL through SQLAlchemy 2 (async, asyncpg), framework-agnostic.

- ``settings``: ``DatabaseSettings`` (``DATABASE_URL``, pool numbers, timeouts, start-up retries).
- ``engine``: the capped pool of one replica, the readiness check, short transactions.
- ``migration_lock``: the PostgreSQL advisory lock one ``migrate`` run holds at a time.
- ``models``: the tables (declarative models); ``migrations/`` changes the schema.
- ``migrator``: what ``python -m <package> migrate`` runs (Alembic), under the migration lock.

A Django project keeps ``settings``, ``engine`` (its start-up check) and ``migration_lock``; its
tables and migrations are Django's.

The application never changes the schema at start: migrations run once per release, before the
new version rolls out (a Helm pre-install/pre-upgrade Job, a Compose one-shot service).
"""

from .engine import (
    Database,
    DatabaseNotConfigured,
    DatabaseUnavailable,
    open_database,
)
from .settings import DatabaseSettings

__all__ = [
    "Database",
    "DatabaseNotConfigured",
    "DatabaseSettings",
    "DatabaseUnavailable",
    "open_database",
]
