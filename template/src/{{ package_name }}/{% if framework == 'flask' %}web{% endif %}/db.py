"""Flask adapter of the database: the pool in the app's extensions, a getter, 503 answers.

Views reach the core's async database through ``portal.run``, on the server's loop: one pool
per process whichever thread asks, so the chart's connection budget (pool size times
processes) stays true. A second, synchronous engine for the Flask threads would double it
(docs/decisions.md).
"""

from typing import cast

from flask import Flask, Response, current_app, jsonify

from ..db import Database, DatabaseNotConfigured, DatabaseUnavailable
from ..db.engine import NOT_CONFIGURED
from ..observability.logs import get_logger

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
