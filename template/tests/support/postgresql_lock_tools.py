"""Lock backend helpers for the tests when locks are PostgreSQL advisory locks."""

import pytest

from .postgres_server import query

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
