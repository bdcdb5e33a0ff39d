"""One replica's connection pool, the readiness check, and short transactions.

The pool is capped: at most ``DB_POOL_SIZE + DB_MAX_OVERFLOW`` connections per replica, whatever
the load; a request that finds no free connection within ``DB_POOL_TIMEOUT_SECONDS`` fails with
``DatabaseUnavailable`` (503) instead of opening one more. Connections are checked before use
(``pool_pre_ping``), so after a database restart stale connections are replaced, not handed out.

Retries happen only while connecting at start. A statement that failed is never retried here:
a write whose answer was lost may have been applied, and only the caller can tell whether
repeating it is safe.
"""

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

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


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, the driver error SQLAlchemy wrapped, and what caused them."""
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


def _sqlstates(exc: BaseException) -> set[str]:
    return {s for c in _causes(exc) if isinstance(s := getattr(c, "sqlstate", None), str)}


def is_transient(exc: BaseException) -> bool:
    """A connection problem that may go away by itself (refused, reset, DNS, server starting)."""
    for cause in _causes(exc):
        if isinstance(cause, OSError):  # also TimeoutError and socket.gaierror
            return True
        if isinstance(cause, DBAPIError) and cause.connection_invalidated:
            return True
    return any(s.startswith("08") or s in TRANSIENT_SQLSTATES for s in _sqlstates(exc))


def is_unavailable(exc: BaseException) -> bool:
    """During a request: a transient error, no free pooled connection, or a statement timeout."""
    if isinstance(exc, PoolTimeout) or is_transient(exc):
        return True
    return STATEMENT_TIMEOUT_SQLSTATE in _sqlstates(exc)


def describe(exc: BaseException) -> str:
    """A one-line reason without SQLAlchemy's background link (never contains the URL)."""
    reason = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    return f"{type(reason).__name__}: {reason}".splitlines()[0][:300]


def create_engine(settings: DatabaseSettings, application_name: str) -> AsyncEngine:
    statement_timeout_ms = settings.db_statement_timeout_ms
    return create_async_engine(
        settings.url(),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_pre_ping=True,
        connect_args={
            "timeout": settings.db_connect_timeout_seconds,
            # A client-side backstop for a server that stops answering altogether (a network
            # partition), which the server-side statement_timeout cannot catch.
            "command_timeout": statement_timeout_ms / 1000 + 1,
            "server_settings": {
                # Names this service's connections in pg_stat_activity.
                "application_name": application_name[:63],
                "statement_timeout": str(statement_timeout_ms),
            },
        },
    )


async def wait_until_reachable(engine: AsyncEngine, retries: int, backoff_seconds: float) -> None:
    """Connect once, retrying transient errors with exponential backoff and jitter.

    Raises the last error when the retries are used up, and at once for errors that waiting does
    not fix (wrong password, unknown database).
    """
    attempt = 0
    while True:
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:
            if not is_transient(exc):
                logger.error("database refused the connection", error=describe(exc))
                raise
            if attempt >= retries:
                logger.error(
                    "database unreachable, giving up", attempts=attempt + 1, error=describe(exc)
                )
                raise
            # Equal jitter: replicas restarting together do not retry in lockstep.
            delay = min(MAX_BACKOFF_SECONDS, backoff_seconds * 2**attempt)
            delay = _jitter.uniform(delay / 2, delay)
            attempt += 1
            logger.warning(
                "database not reachable yet, retrying",
                attempt=attempt,
                retries=retries,
                retry_in_seconds=round(delay, 3),
                error=describe(exc),
            )
            await asyncio.sleep(delay)
        else:
            if attempt:
                logger.info("database reachable", attempts=attempt + 1)
            return


async def check_reachable(settings: DatabaseSettings, application_name: str) -> None:
    """``wait_until_reachable`` on a connection of its own, closed after: for a service whose
    queries go through another driver's pool (Django's ORM), so that start-up retries and refuses
    the same way."""
    engine = create_engine(settings, application_name)
    try:
        await wait_until_reachable(
            engine, settings.db_connect_retries, settings.db_connect_backoff_seconds
        )
    finally:
        await engine.dispose()


class Database:
    """The pool of this replica, or a stand-in that refuses every use when DATABASE_URL is unset."""

    def __init__(self, settings: DatabaseSettings, engine: AsyncEngine | None) -> None:
        self.settings = settings
        self.engine = engine
        self._sessions = (
            async_sessionmaker(engine, expire_on_commit=False) if engine is not None else None
        )

    @property
    def configured(self) -> bool:
        return self.engine is not None

    async def connect(self) -> None:
        """At start: wait until the database answers (bounded retries); nothing if unconfigured."""
        if self.engine is None:
            return
        await wait_until_reachable(
            self.engine, self.settings.db_connect_retries, self.settings.db_connect_backoff_seconds
        )

    async def ping(self) -> None:
        """The readiness check: one ``SELECT 1`` on a pooled connection."""
        if self.engine is None:
            raise DatabaseNotConfigured(NOT_CONFIGURED)
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed when the block ends, rolled back on error.

        Keep the block short (no waiting on other services inside it): the connection is held,
        and the pool has only so many. Connection problems, pool timeouts and statement timeouts
        come out as ``DatabaseUnavailable``; anything else (constraint violations, bugs) as is.
        """
        if self._sessions is None:
            raise DatabaseNotConfigured(NOT_CONFIGURED)
        try:
            async with self._sessions.begin() as session:
                yield session
        except Exception as exc:
            if is_unavailable(exc):
                raise DatabaseUnavailable(describe(exc)) from exc
            raise

    async def close(self) -> None:
        """Close every pooled connection (at shutdown)."""
        if self.engine is not None:
            await self.engine.dispose()


def open_database(settings: DatabaseSettings, application_name: str) -> Database:
    """The pool for ``DATABASE_URL``; connections are opened on first use, not here."""
    if not settings.configured:
        logger.warning(
            "no database configured: set DATABASE_URL; database routes answer 503 and "
            "readiness does not check a database"
        )
        return Database(settings, None)
    logger.info(
        "database pool configured",
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        max_connections=settings.max_connections,
        statement_timeout_ms=settings.db_statement_timeout_ms,
    )
    return Database(settings, create_engine(settings, application_name))
