"""Locks in PostgreSQL: session-level advisory locks, one connection per held lock.

Used when the shared store is Memcached, which cannot hold a lock safely (no owner check on
delete, and it evicts keys under memory pressure). The lease is the connection:

- acquire: open a connection, ``pg_try_advisory_lock(key)`` (never waits) and take a fencing
  token from the ``job_fencing_tokens`` sequence;
- renew: check on that connection that the lock is still held (``pg_locks``), within the TTL;
- release: ``pg_advisory_unlock`` and close; a lock whose connection is gone is already free.

A holder killed with SIGKILL frees the lock as soon as the server sees the connection close
(at once on the same host; across a network partition, after the TCP keepalive settings below,
which are shorter than any sensible TTL). Nobody can delete another session's advisory lock,
but an operator can end the session (``pg_terminate_backend``): renewal then reports the loss.

The sequence and the run-record tables (``JOBS_SCHEMA``) belong to the lock backend, like the keys
it writes in Redis, not to the application's models: they are created on first use with
``IF NOT EXISTS`` under a transaction-level advisory lock, so replicas starting together do not
race, and the Alembic migrations of the application stay untouched by the scheduler choice.
"""

import hashlib
import secrets

import asyncpg

from . import Lease, LockBackend, LockUnavailable

HELD = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND pid = pg_backend_pid() AND classid = (($1::bigint >> 32) & 4294967295)::oid "
    "AND objid = ($1::bigint & 4294967295)::oid AND objsubid = 1"
)
# The server notices a vanished client within about idle + interval * count seconds.
SERVER_KEEPALIVES = {
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "2",
    "tcp_keepalives_count": "3",
}


JOBS_SCHEMA = """
CREATE SEQUENCE IF NOT EXISTS job_fencing_tokens;
CREATE TABLE IF NOT EXISTS job_runs (
    idempotency_key text PRIMARY KEY,
    job text NOT NULL,
    record jsonb NOT NULL,
    saved_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ix_job_runs_job_saved_at ON job_runs (job, saved_at DESC);
CREATE TABLE IF NOT EXISTS job_counters (
    name text PRIMARY KEY,
    value bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS job_writes (
    job text NOT NULL,
    idempotency_key text NOT NULL,
    value bigint NOT NULL,
    fencing_token bigint NOT NULL,
    seq bigserial NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job, idempotency_key)
);
-- newest(job): the last write, by index, however long the history.
CREATE INDEX IF NOT EXISTS ix_job_writes_job_seq ON job_writes (job, seq);
CREATE TABLE IF NOT EXISTS job_fences (
    job text PRIMARY KEY,
    fencing_token bigint NOT NULL
);
"""
SCHEMA_LOCK_KEY = 7_245_019_377_113_209_001


async def ensure_schema(connection: asyncpg.Connection) -> None:
    """Create the sequence and tables if missing; safe to run from many replicas at once."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK_KEY)
        await connection.execute(JOBS_SCHEMA)


# What a lost or broken connection raises: socket errors, server errors, client-side errors.
LOCK_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def advisory_key(name: str) -> int:
    """A signed 64-bit key for ``name`` (advisory locks are scoped to one database)."""
    digest = hashlib.sha256(f"job-lock:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def plain_url(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"postgresql://{rest}" if scheme.startswith("postgres") else url


class PostgresLockBackend:
    def __init__(self, url: str, timeout_seconds: float) -> None:
        self._url = plain_url(url)
        self._timeout = timeout_seconds
        self._connections: dict[str, asyncpg.Connection] = {}
        self._schema_ready = False

    async def _connect(self) -> asyncpg.Connection:
        try:
            connection: asyncpg.Connection = await asyncpg.connect(
                self._url,
                timeout=self._timeout,
                command_timeout=self._timeout,
                server_settings={"application_name": "job-lock", **SERVER_KEEPALIVES},
            )
        except LOCK_ERRORS as exc:
            raise LockUnavailable(f"postgresql lock connect failed: {exc}") from exc
        return connection

    async def acquire(self, name: str, ttl_seconds: float) -> Lease | None:
        connection = await self._connect()
        try:
            if not self._schema_ready:
                await ensure_schema(connection)
                self._schema_ready = True
            got = await connection.fetchval("SELECT pg_try_advisory_lock($1)", advisory_key(name))
            if not got:
                await connection.close()
                return None
            token = await connection.fetchval("SELECT nextval('job_fencing_tokens')")
        except LOCK_ERRORS as exc:
            connection.terminate()
            raise LockUnavailable(f"postgresql lock acquire failed: {exc}") from exc
        owner = secrets.token_hex(16)
        self._connections[owner] = connection
        return Lease(name, owner, int(token), ttl_seconds)

    async def renew(self, lease: Lease) -> bool:
        connection = self._connections.get(lease.owner)
        if connection is None or connection.is_closed():
            return False
        try:
            held = await connection.fetchval(HELD, advisory_key(lease.name))
        except (asyncpg.ConnectionDoesNotExistError, asyncpg.AdminShutdownError):
            return False  # the session ended: its advisory locks are gone with it
        except LOCK_ERRORS as exc:
            raise LockUnavailable(f"postgresql lock renew failed: {exc}") from exc
        return bool(held)

    async def release(self, lease: Lease) -> bool:
        connection = self._connections.pop(lease.owner, None)
        if connection is None or connection.is_closed():
            return False
        try:
            released = await connection.fetchval(
                "SELECT pg_advisory_unlock($1)", advisory_key(lease.name)
            )
            await connection.close()
        except LOCK_ERRORS:
            connection.terminate()  # closing the session frees whatever it held
            return False
        return bool(released)

    async def ping(self) -> None:
        connection = await self._connect()
        await connection.close()

    async def close(self) -> None:
        for connection in self._connections.values():
            connection.terminate()
        self._connections.clear()


def from_url(url: str, timeout_seconds: float) -> LockBackend:
    return PostgresLockBackend(url, timeout_seconds)
