"""Flask adapter of the database: the pool in the app's extensions, ``transaction``, 503 answers.

Views write plain synchronous SQLAlchemy 2 ORM code against a ``sqlalchemy.orm.Session`` and
run it with ``transaction(work)``. The statements still go through the core's async engine, on
the server's loop (``AsyncSession.run_sync``): one pool per process whichever thread asks, so
the chart's connection budget (pool size times processes) stays true. A second, synchronous
engine for the Flask threads would double it (docs/decisions.md).
"""

from collections.abc import Callable
from typing import TypeVar, cast

from flask import Flask, Response, current_app, jsonify
from sqlalchemy.orm import Session

from ..db import DatabaseNotConfigured, DatabaseUnavailable
from ..db.connect import NOT_CONFIGURED
from ..db.engine import Database
from ..observability.logs import get_logger
from . import portal

T = TypeVar("T")

logger = get_logger(__name__)


def install(app: Flask, database: Database) -> None:
    app.extensions["database"] = database
    app.register_error_handler(DatabaseNotConfigured, database_not_configured)
    app.register_error_handler(DatabaseUnavailable, database_unavailable)


def _json(detail: str, status: int, headers: dict[str, str] | None = None) -> Response:
    response = jsonify({"detail": detail})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def database_not_configured(exc: DatabaseNotConfigured) -> Response:
    return _json(NOT_CONFIGURED, 503)


def database_unavailable(exc: DatabaseUnavailable) -> Response:
    logger.warning("database unavailable", error=str(exc))
    return _json("database unavailable", 503, {"Retry-After": "1"})


def database() -> Database:
    """The process's database (its pool belongs to the server's event loop)."""
    return cast(Database, current_app.extensions["database"])


class _Transactions:
    """``transaction`` (the module-level name below)."""

    @staticmethod
    def run(work: Callable[[Session], T]) -> T:
        """Run ``work(session)`` in one short transaction on the process's pool; return its
        result.

        ``session`` is a synchronous ``sqlalchemy.orm.Session`` (``add``, ``flush``, ``get``,
        ``scalars``, ``execute``; lazy loads work inside ``work``). The transaction commits when
        ``work`` returns and rolls back when it raises, the exception coming out as is. Lost
        connections, no free connection within ``DB_POOL_TIMEOUT_SECONDS`` and statement
        timeouts come out as ``DatabaseUnavailable`` (503 with ``Retry-After``); without
        ``DATABASE_URL``, ``DatabaseNotConfigured`` (503).

        ``work`` runs on the server's event loop, where SQLAlchemy awaits each statement on the
        async connection (``AsyncSession.run_sync``): keep it to database code. Calls to other
        services, file reads and heavy computation go before or after it, in the view, or every
        request of the process waits for them. Return plain values: once the transaction has
        ended the objects are detached, their loaded attributes readable but nothing loaded
        lazily.
        """
        db = database()

        async def run() -> T:
            async with db.transaction() as session:
                return await session.run_sync(work)

        return portal.run(run())


# A method, not a generic function (whose syntax is Python 3.12's), so the module parses on 3.11.
transaction = _Transactions.run
