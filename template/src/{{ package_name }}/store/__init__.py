"""The shared key-value store behind sessions and the cache.

One small byte-level interface, one module per backend. ``open_store`` picks the backend from the
URL scheme of ``STORE_URL``: ``redis://``/``rediss://``/``valkey://``/``valkeys://`` (redis_store),
``memcached://`` (memcached_store), ``memory://`` (in-process, development only). Only the backend
chosen when the service was generated is installed; another scheme is refused at start.
"""

import importlib
from typing import Protocol

from ..config import ConfigError


class StoreUnavailable(Exception):
    """The store could not be reached or did not answer in time."""


class KeyValueStore(Protocol):
    """Bytes in, bytes out, with a time to live. Implementations raise StoreUnavailable."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None: ...

    async def delete(self, *keys: str) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


_MODULE_BY_SCHEME = {
    "memory": "memory_store",
    "redis": "redis_store",
    "rediss": "redis_store",
    "valkey": "redis_store",
    "valkeys": "redis_store",
    "memcached": "memcached_store",
}


def open_store(url: str, timeout_seconds: float) -> KeyValueStore:
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    module_name = _MODULE_BY_SCHEME.get(scheme)
    if module_name is None:
        allowed = ", ".join(f"{s}://" for s in _MODULE_BY_SCHEME)
        raise ConfigError([f"STORE_URL: unknown scheme {scheme!r}; expected one of {allowed}"])
    try:
        module = importlib.import_module(f".{module_name}", __name__)
    except ModuleNotFoundError:
        message = f"STORE_URL: {scheme}:// is not available in this service (built for another)"
        raise ConfigError([message]) from None
    store: KeyValueStore = module.from_url(url, timeout_seconds)
    return store
