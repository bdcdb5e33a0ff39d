"""PostgreSQL through SQLAlchemy 2 (async, asyncpg), framework-agnostic.

- ``settings``: ``DatabaseSettings`` (``DATABASE_URL``, pool numbers, timeouts, start-up retries).
- ``connect``: which errors are worth waiting for at start, bounded retries, the start-up check
  and plain connections of the core's own (asyncpg, no SQLAlchemy).
- ``engine``: the capped pool of one replica (SQLAlchemy), the readiness check, short
  transactions.
- ``migration_lock``: the PostgreSQL advisory lock one ``migrate`` run holds at a time.
- ``models``: the tables (declarative models); ``migrations/`` changes the schema.
- ``migrator``: what ``python -m <package> migrate`` runs (Alembic), under the migration lock.

A Django project keeps ``settings``, ``connect`` (its start-up check) and ``migration_lock``; its
pool, tables and migrations are Django's, and it never imports SQLAlchemy. So this package
imports nothing at import time but the settings and the errors: the pool is ``engine``'s.

The application never changes the schema at start: migrations run once per release, before the
new version rolls out (a Helm pre-install/pre-upgrade Job, a Compose one-shot service).
"""

from .connect import DatabaseNotConfigured, DatabaseUnavailable
from .settings import DatabaseSettings

__all__ = ["DatabaseNotConfigured", "DatabaseSettings", "DatabaseUnavailable"]
