"""The shared key-value store behind sessions and the cache.

One small byte-level interface, one module per backend. ``open_store`` picks the backend from the
URL scheme of ``STORE_URL``: ``redis://``/``rediss://``/``valkey://``/``valkeys://`` (redis_store),
``memcached://`` (memcached_store), ``memory://`` (in-process, development only). Only the backend
chosen when the service was generated is installed; another scheme is refused at start.
"""

import importlib
import importlib.util
from typing import Protocol

from ..config import ConfigError, Settings


class StoreUnavailable(Exception):
    """The store could not be reached or did not answer in time."""


class KeyValueStore(Protocol):
    """Bytes in, bytes out, with a time to live. Implementations raise StoreUnavailable."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None: ...

    async def delete(self, *keys: str) -> None: ...

    async def incr(self, key: str, amount: int, ttl_seconds: int) -> int:
        """Add ``amount`` (may be negative) to the counter at ``key`` and return the new value,
        atomically for every client of the store. A missing key starts at 0 and expires after
        ``ttl_seconds``; an existing key keeps its expiry (a fixed window)."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...

    # Conditional writes. A request that read a record before another request deleted it (logout,
    # rotation, invalidation) must not write it back: these succeed only while the key is in the
    # state the caller last saw, atomically on the server (docs/service/shared-state.md).

    async def add(self, key: str, value: bytes, ttl_seconds: int) -> bool:
        """Write only when the key is absent; False when it exists."""
        ...

    async def compare_and_set(
        self, key: str, expected: bytes, value: bytes, ttl_seconds: int
    ) -> bool:
        """Write only when the key still holds ``expected``; False when it changed or is gone."""
        ...

    async def remove(self, key: str) -> bool:
        """Delete the key; True only when this call deleted it (it was there)."""
        ...


_MODULE_BY_SCHEME = {
    "memory": "memory_store",
    "redis": "redis_store",
    "rediss": "redis_store",
    "valkey": "redis_store",
    "valkeys": "redis_store",
    "memcached": "memcached_store",
}


def store_module(url: str) -> str:
    """The module of this package serving ``url``, or ConfigError naming STORE_URL."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    module_name = _MODULE_BY_SCHEME.get(scheme)
    if module_name is None:
        allowed = ", ".join(f"{s}://" for s in _MODULE_BY_SCHEME)
        raise ConfigError([f"STORE_URL: unknown scheme {scheme!r}; expected one of {allowed}"])
    if importlib.util.find_spec(f".{module_name}", __name__) is None:
        message = f"STORE_URL: {scheme}:// is not available in this service (built for another)"
        raise ConfigError([message])
    return module_name


def check_store_url(settings: Settings) -> None:
    """Part of the start-up check (``config.FEATURE_SETTINGS``): a store this service can open."""
    store_module(settings.store_url_value)


# STORE_MAX_CONNECTIONS' default (config.Settings), for stores opened without settings.
DEFAULT_MAX_CONNECTIONS = 20


def open_store(
    url: str, timeout_seconds: float, max_connections: int = DEFAULT_MAX_CONNECTIONS
) -> KeyValueStore:
    """The store at ``url``: at most ``max_connections`` connections, each command (and each
    wait for a free connection) bounded by ``timeout_seconds``."""
    module = importlib.import_module(f".{store_module(url)}", __name__)
    store: KeyValueStore = module.from_url(url, timeout_seconds, max_connections)
    return store
