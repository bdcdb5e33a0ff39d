"""The shared cache: JSON values with a time to live, under the service's key namespace.

Values are serialized as JSON, never pickled: a shared store is written by every replica (and by
other versions of the service during a rolling update), and unpickling its contents would run code.
There is deliberately no in-process layer: a value cached in one replica's memory goes stale the
moment another replica changes it.
"""

import json
from collections.abc import Awaitable, Callable
from typing import Any

from .store import KeyValueStore

# Memcached reads a TTL above 30 days as an absolute Unix time; keep every TTL below it.
MAX_TTL_SECONDS = 30 * 24 * 3600

JSONValue = Any


class Cache:
    def __init__(self, store: KeyValueStore, namespace: str) -> None:
        self._store = store
        self._prefix = f"{namespace}:cache:"

    def _key(self, key: str) -> str:
        return self._prefix + key

    async def get(self, key: str) -> JSONValue | None:
        raw = await self._store.get(self._key(key))
        return None if raw is None else json.loads(raw)

    async def set(self, key: str, value: JSONValue, ttl_seconds: int) -> None:
        if not 0 < ttl_seconds <= MAX_TTL_SECONDS:
            raise ValueError(f"ttl_seconds must be between 1 and {MAX_TTL_SECONDS}")
        await self._store.set(self._key(key), json.dumps(value).encode(), ttl_seconds)

    async def delete(self, key: str) -> None:
        await self._store.delete(self._key(key))

    async def get_or_compute(
        self, key: str, ttl_seconds: int, compute: Callable[[], Awaitable[JSONValue]]
    ) -> tuple[JSONValue, bool]:
        """The cached value, or compute, store and return it. The flag says whether it was cached.

        ``None`` is not cacheable (it means "missing"): wrap it if you need to cache absence.
        """
        cached = await self.get(key)
        if cached is not None:
            return cached, True
        value = await compute()
        if value is not None:
            await self.set(key, value, ttl_seconds)
        return value, False
