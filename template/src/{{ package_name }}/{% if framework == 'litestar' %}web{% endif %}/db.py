"""Litestar adapter of the database: the pool in ``app.state``, a dependency, 503 answers."""

from typing import Any

from litestar import Request, Response
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.plugins import InitPlugin

from ..db import DatabaseNotConfigured, DatabaseUnavailable
from ..db.connect import NOT_CONFIGURED
from ..db.engine import Database
from ..observability.logs import get_logger

logger = get_logger(__name__)


class DatabasePlugin(InitPlugin):
    """The database in ``app.state``, the ``database`` dependency and its error answers."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.state["database"] = self.database
        app_config.dependencies["database"] = Provide(provide_database)
        app_config.exception_handlers[DatabaseNotConfigured] = database_not_configured
        app_config.exception_handlers[DatabaseUnavailable] = database_unavailable
        return app_config


def database_not_configured(
    request: Request[Any, Any, State], exc: Exception
) -> Response[dict[str, str]]:
    return Response({"detail": NOT_CONFIGURED}, status_code=503)


def database_unavailable(
    request: Request[Any, Any, State], exc: Exception
) -> Response[dict[str, str]]:
    logger.warning("database unavailable", error=str(exc))
    return Response(
        {"detail": "database unavailable"}, status_code=503, headers={"Retry-After": "1"}
    )


# Async, like every provider that does no blocking work: no worker-thread hop per request.
async def provide_database(state: State) -> Database:
    database: Database = state.database
    return database


DatabaseDep = NamedDependency[Database]
