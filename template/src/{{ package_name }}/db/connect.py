"""Reaching the database at start: which errors are worth waiting for, bounded retries, and the
core's own plain connections (asyncpg, no pool).

No SQLAlchemy here. The start-up check and the migration lock (``migration_lock``) use these
connections, so a service whose queries go through another driver's pool (Django's ORM on
psycopg) checks its database and migrates without importing SQLAlchemy, and starts faster.

Retries happen only while connecting at start. A statement that failed is never retried here:
a write whose answer was lost may have been applied, and only the caller can tell whether
repeating it is safe.
"""

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from ..observability.logs import get_logger
from .settings import DatabaseSettings

logger = get_logger(__name__)

NOT_CONFIGURED = "database not configured: set DATABASE_URL"
# SQLSTATEs of a server that is shutting down, starting or out of connection slots; class 08
# ("connection exception") is matched by its prefix. Worth retrying at start.
TRANSIENT_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
STATEMENT_TIMEOUT_SQLSTATE = "57014"
MAX_BACKOFF_SECONDS = 10.0

_jitter = random.SystemRandom()


class DatabaseNotConfigured(Exception):
    """DATABASE_URL is not set (development only), so database-backed routes cannot work."""


class DatabaseUnavailable(Exception):
    """The database is unreachable, had no free connection in time, or a statement timed out."""


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, the driver error a library wrapped (SQLAlchemy's ``orig``), and their causes."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        wrapped = getattr(current, "orig", None)
        if isinstance(wrapped, BaseException):
            pending.append(wrapped)
        pending.extend((current.__cause__, current.__context__))


def sqlstates(exc: BaseException) -> set[str]:
    return {s for c in causes(exc) if isinstance(s := getattr(c, "sqlstate", None), str)}


def is_transient(exc: BaseException) -> bool:
    """A connection problem that may go away by itself (refused, reset, DNS, server starting)."""
    for cause in causes(exc):
        if isinstance(cause, OSError):  # also TimeoutError and socket.gaierror
            return True
        # SQLAlchemy marks the errors that invalidated a pooled connection.
        if getattr(cause, "connection_invalidated", False) is True:
            return True
    return any(s.startswith("08") or s in TRANSIENT_SQLSTATES for s in sqlstates(exc))


def describe(exc: BaseException) -> str:
    """A one-line reason, the driver's own error where a library wrapped it (never the URL)."""
    wrapped = getattr(exc, "orig", None)
    reason = wrapped if isinstance(wrapped, BaseException) else exc
    return f"{type(reason).__name__}: {reason}".splitlines()[0][:300]


async def retry_while_transient(
    attempt: Callable[[], Awaitable[None]], retries: int, backoff_seconds: float
) -> None:
    """Run ``attempt`` (connect and ``SELECT 1``), retrying transient errors with exponential
    backoff and jitter.

    Raises the last error when the retries are used up, and at once for errors that waiting does
    not fix (wrong password, unknown database).
    """
    tries = 0
    while True:
        try:
            await attempt()
        except Exception as exc:
            if not is_transient(exc):
                logger.error("database refused the connection", error=describe(exc))
                raise
            if tries >= retries:
                logger.error(
                    "database unreachable, giving up", attempts=tries + 1, error=describe(exc)
                )
                raise
            # Equal jitter: replicas restarting together do not retry in lockstep.
            delay = min(MAX_BACKOFF_SECONDS, backoff_seconds * 2**tries)
            delay = _jitter.uniform(delay / 2, delay)
            tries += 1
            logger.warning(
                "database not reachable yet, retrying",
                attempt=tries,
                retries=retries,
                retry_in_seconds=round(delay, 3),
                error=describe(exc),
            )
            await asyncio.sleep(delay)
        else:
            if tries:
                logger.info("database reachable", attempts=tries + 1)
            return


def plain_dsn(settings: DatabaseSettings) -> str:
    """``DATABASE_URL`` as asyncpg reads a DSN: ``postgresql://``, and the ``ssl`` parameter
    (which SQLAlchemy hands to asyncpg as an argument) spelled ``sslmode``."""
    url = urlsplit(settings.url())
    query = [("sslmode" if key == "ssl" else key, value) for key, value in parse_qsl(url.query)]
    return urlunsplit(url._replace(scheme="postgresql", query=urlencode(query)))


async def connect(
    settings: DatabaseSettings, application_name: str, **server_settings: str
) -> asyncpg.Connection:
    """One connection of its own (no pool), named ``application_name`` in pg_stat_activity."""
    connection: asyncpg.Connection = await asyncpg.connect(
        plain_dsn(settings),
        timeout=settings.db_connect_timeout_seconds,
        server_settings={"application_name": application_name[:63], **server_settings},
    )
    return connection


async def check_reachable(settings: DatabaseSettings, application_name: str) -> None:
    """Wait until the database answers ``SELECT 1`` on a connection of its own, closed after,
    with the bounded start-up retries: for a service whose queries go through another driver's
    pool (Django's ORM), so that its start retries and refuses like every other."""

    async def select_one() -> None:
        connection = await connect(settings, application_name)
        try:
            await connection.fetchval("SELECT 1")
        finally:
            await connection.close()

    await retry_while_transient(
        select_one, settings.db_connect_retries, settings.db_connect_backoff_seconds
    )
