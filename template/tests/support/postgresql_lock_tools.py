"""Lock backend helpers for the tests when locks are PostgreSQL advisory locks."""

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from .postgres_server import PostgresServer, query

# The lease is the holder's session: it ends with the session, never by a timer.
UNRENEWED_LOCK_EXPIRES = False


def lock_server_url(request: pytest.FixtureRequest) -> str:
    """A fresh database on the session's PostgreSQL server."""
    url: str = request.getfixturevalue("database_url")
    return url


def break_lock(lock_url: str, namespace: str, job: str) -> None:
    """End the holder's session: an advisory lock cannot be deleted, only its session ended."""
    rows = query(
        lock_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'job-lock' AND datname = current_database()",
    )
    assert rows, "no lock to break"


def start_lock_server(directory: Path) -> tuple[str, Callable[[], None]]:
    """A throw-away PostgreSQL (or TEST_DATABASE_URL's) with a fresh database: URL and stop."""
    server = PostgresServer.from_environment()
    server.start()
    url = asyncio.run(server.create_database())

    def stop() -> None:
        asyncio.run(server.drop_database(url))
        server.remove()

    return url, stop
