"""Lock backend helpers for the tests when locks live in Redis/Valkey (the shared store)."""

from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from .redis_server import StoreServer

# Without renewal the server drops the key after the TTL (PX).
UNRENEWED_LOCK_EXPIRES = True


def lock_server_url(request: pytest.FixtureRequest) -> str:
    """The session's redis-server (the tests isolate themselves by key namespace)."""
    return str(request.getfixturevalue("store_server").url)


def break_lock(lock_url: str, namespace: str, job: str) -> None:
    """Delete the job's lock key under its holder, as an operator or a flush would."""
    client = redis.Redis.from_url(lock_url)
    try:
        assert client.delete(f"{namespace}:jobs:{job}:lock") == 1, "no lock to break"
    finally:
        client.close()


def start_lock_server(directory: Path) -> tuple[str, Callable[[], None]]:
    """A throw-away redis-server for the benchmark: its URL and how to stop it."""
    server = StoreServer(directory)
    server.start()
    return server.url, server.stop
