"""One replica's connection pool, the readiness check, and short transactions.

The pool is capped: at most ``DB_POOL_SIZE + DB_MAX_OVERFLOW`` connections per replica, whatever
the load; a request that finds no free connection within ``DB_POOL_TIMEOUT_SECONDS`` fails with
``DatabaseUnavailable`` (503) instead of opening one more. Connections are checked before use
(``pool_pre_ping``), so after a database restart stale connections are replaced, not handed out.

Retries happen only while connecting at start (``connect.retry_while_transient``); a statement
that failed is never retried.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from ..observability.logs import get_logger
from .connect import (
    NOT_CONFIGURED,
    STATEMENT_TIMEOUT_SQLSTATE,
    DatabaseNotConfigured,
    DatabaseUnavailable,
    describe,
    is_transient,
    retry_while_transient,
    sqlstates,
)
from .settings import DatabaseSettings

logger = get_logger(__name__)


def is_unavailable(exc: BaseException) -> bool:
    """During a request: a transient error, no free pooled connection, or a statement timeout."""
    if isinstance(exc, PoolTimeout) or is_transient(exc):
        return True
    return STATEMENT_TIMEOUT_SQLSTATE in sqlstates(exc)


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
    """Connect once through the pool, retrying transient errors (``retry_while_transient``)."""

    async def select_one() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    await retry_while_transient(select_one, retries, backoff_seconds)


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
