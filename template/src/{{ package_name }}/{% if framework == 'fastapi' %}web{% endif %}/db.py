"""FastAPI adapter of the database: the pool on ``app.state``, a dependency, 503 answers."""

from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from ..db import DatabaseNotConfigured, DatabaseUnavailable
from ..db.connect import NOT_CONFIGURED
from ..db.engine import Database
from ..observability.logs import get_logger

logger = get_logger(__name__)


def install(app: FastAPI, database: Database) -> None:
    app.state.database = database
    app.add_exception_handler(DatabaseNotConfigured, database_not_configured)
    app.add_exception_handler(DatabaseUnavailable, database_unavailable)


async def database_not_configured(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": NOT_CONFIGURED}, status_code=503)


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("database unavailable", error=str(exc))
    return JSONResponse(
        {"detail": "database unavailable"}, status_code=503, headers={"Retry-After": "1"}
    )


# Async, like every dependency that does no blocking work: no worker-thread hop per request.
async def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


DatabaseDep = Annotated[Database, Depends(get_database)]
