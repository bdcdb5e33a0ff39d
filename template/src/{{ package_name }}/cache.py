"""The shared cache: JSON values with a time to live, under the service's key namespace.

Values are serialized as JSON, never pickled: a shared store is written by every replica (and by
other versions of the service during a rolling update), and unpickling its contents would run code.
There is deliberately no in-process layer: a value cached in one replica's memory goes stale the
moment another replica changes it.

``get_or_compute`` takes a lease before it computes (``add`` of a marker) and stores its result
only over its own lease (compare-and-set): a ``delete`` or ``set`` that lands while it computes
removes or replaces the lease, so a value computed from old data never overwrites the newer state.
"""

import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from .store import KeyValueStore

# Memcached reads a TTL above 30 days as an absolute Unix time; keep every TTL below it.
MAX_TTL_SECONDS = 30 * 24 * 3600

# The longest a computation holds its lease; a computation that takes longer is not cached.
LEASE_SECONDS = 30
# A lease is not JSON, so no cached value can be mistaken for one.
_LEASE_PREFIX = b"\x00lease:"

JSONValue = Any


class Cache:
    def __init__(self, store: KeyValueStore, namespace: str) -> None:
        self._store = store
        self._prefix = f"{namespace}:cache:"

    def _key(self, key: str) -> str:
        return self._prefix + key

    async def get(self, key: str) -> JSONValue | None:
        raw = await self._store.get(self._key(key))
        if raw is None or raw.startswith(_LEASE_PREFIX):
            return None
        return json.loads(raw)

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
        While another caller holds the lease, the value is computed but not stored.
        """
        if not 0 < ttl_seconds <= MAX_TTL_SECONDS:
            raise ValueError(f"ttl_seconds must be between 1 and {MAX_TTL_SECONDS}")
        store_key = self._key(key)
        raw = await self._store.get(store_key)
        if raw is not None and not raw.startswith(_LEASE_PREFIX):
            return json.loads(raw), True
        lease = _LEASE_PREFIX + secrets.token_hex(16).encode()
        leased = raw is None and await self._store.add(
            store_key, lease, min(LEASE_SECONDS, ttl_seconds)
        )
        value = await compute()
        if value is not None and leased:
            encoded = json.dumps(value).encode()
            await self._store.compare_and_set(store_key, lease, encoded, ttl_seconds)
        return value, False
