"""Django's cache framework (``CACHES["default"]``, ``django.core.cache.cache``) on the store.

The entries live in the store the service already uses for sessions and its own cache, through
the core's connections (``store.KeyValueStore``): no second client, pool or URL to configure.
Every replica reads what another wrote.

- **Keys**: ``<KEY_NAMESPACE>:django-cache:<Django's key>``, Django's key being
  ``make_key``'s ``<KEY_PREFIX>:<version>:<key>``, so versions and prefixes keep entries apart as
  in any Django backend. A key that a store could not take as it is (over 200 characters, spaces
  or control characters, which Memcached refuses) is stored under its SHA-256 instead.
- **Values are JSON**, as in the core's cache, never pickled: every replica, and during a rolling
  update another version of the service, writes this store, and unpickling what another process
  wrote can run code. A value JSON cannot represent (a model instance, bytes, a set) is refused
  with ``TypeError``; tuples come back as lists. Integers are stored as their digits, so
  ``incr`` is the store's atomic increment.
- **Timeouts**: ``TIMEOUT`` (Django's default, 300 s) for the calls that give none; whole seconds,
  rounded up, as the store keeps them; ``None`` keeps an entry for the store's longest TTL
  (30 days: every key in the shared store expires); ``0`` or less expires it at once.
- ``clear`` is refused: the store cannot delete the keys of one service only, and deleting the
  whole store would log every user out. Bump ``VERSION`` (or use ``incr_version``) to drop
  entries; they expire with their TTL.

The async methods (``aget``, ``aset``...) await the store on the service's loop; the sync ones run
there through ``service_binding.run`` (never on an event loop's own thread).
"""

# Django's API names the entries' lifetime ``timeout``; it is not a deadline of the call.
# ruff: noqa: ASYNC109

import asyncio
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache

from ..cache import MAX_TTL_SECONDS
from . import service_binding
from .service_binding import BoundServices

# Keys every store takes as they are: printable ASCII without spaces, short enough for
# Memcached's 250 bytes with the namespace in front.
_PLAIN_KEY = re.compile(r"^[!-~]{1,200}$")


class SharedStoreCache(BaseCache):
    """A Django cache backend over the service's shared store. ``services`` is for tests
    (default: the running application's, ``service_binding.current()``)."""

    def __init__(
        self, location: str, params: Mapping[str, Any], services: BoundServices | None = None
    ) -> None:
        super().__init__(dict(params))
        self._services = services

    @property
    def services(self) -> BoundServices:
        return self._services or service_binding.current()

    def validate_key(self, key: str) -> None:
        """Any key is safe here (see ``_store_key``): no warning about Memcached's limits."""

    def _store_key(self, key: str, version: int | None) -> str:
        made = self.make_and_validate_key(key, version)
        namespace = self.services.namespace
        if _PLAIN_KEY.match(made):
            return f"{namespace}:django-cache:{made}"
        return f"{namespace}:django-cache-sha256:{hashlib.sha256(made.encode()).hexdigest()}"

    def _ttl(self, timeout: float | object | None) -> int | None:
        """The store TTL in seconds, or None for "expire now"."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return MAX_TTL_SECONDS
        if not isinstance(timeout, int | float):
            raise TypeError(f"cache timeout must be a number of seconds or None, not {timeout!r}")
        if timeout <= 0:
            return None
        return min(MAX_TTL_SECONDS, math.ceil(timeout))

    async def _command(self, name: str, *args: Any) -> Any:
        services = self.services
        return await service_binding.on_loop(getattr(services.store, name)(*args), services)

    def _sync(self, coroutine: Any) -> Any:
        return service_binding.run(coroutine, self.services)

    # The async API: the store's own commands.

    async def aadd(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        store_key, encoded, ttl = self._store_key(key, version), encode(value), self._ttl(timeout)
        if ttl is None:
            # Added and expired at once: True only if the key was absent, as Django's backends.
            added = bool(await self._command("add", store_key, encoded, 1))
            if added:
                await self._command("delete", store_key)
            return added
        return bool(await self._command("add", store_key, encoded, ttl))

    async def aget(self, key: str, default: Any = None, version: int | None = None) -> Any:
        raw = await self._command("get", self._store_key(key, version))
        return default if raw is None else json.loads(raw)

    async def aset(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> None:
        store_key, encoded, ttl = self._store_key(key, version), encode(value), self._ttl(timeout)
        if ttl is None:
            await self._command("delete", store_key)
        else:
            await self._command("set", store_key, encoded, ttl)

    async def atouch(
        self, key: str, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        store_key, ttl = self._store_key(key, version), self._ttl(timeout)
        raw = await self._command("get", store_key)
        if raw is None:
            return False
        if ttl is None:
            return bool(await self._command("remove", store_key))
        # Rewritten only if nobody changed it meanwhile (the store has no "expire" command).
        return bool(await self._command("compare_and_set", store_key, raw, raw, ttl))

    async def adelete(self, key: str, version: int | None = None) -> bool:
        return bool(await self._command("remove", self._store_key(key, version)))

    async def ahas_key(self, key: str, version: int | None = None) -> bool:
        return await self._command("get", self._store_key(key, version)) is not None

    async def aincr(self, key: str, delta: int = 1, version: int | None = None) -> int:
        """Atomic on the store: concurrent increments from every replica all count. A missing
        key is a ``ValueError``, as in every Django backend; on Memcached a counter cannot go
        below 0 (the server's ``decr`` floors it)."""
        store_key = self._store_key(key, version)
        raw = await self._command("get", store_key)
        if raw is None:
            raise ValueError(f"Key {key!r} not found")
        current = json.loads(raw)
        if not isinstance(current, int) or isinstance(current, bool):
            raise ValueError(f"Key {key!r} does not hold an integer")
        ttl = self._ttl(DEFAULT_TIMEOUT) or 1
        return int(await self._command("incr", store_key, delta, ttl))

    async def aget_many(self, keys: Iterable[str], version: int | None = None) -> dict[str, Any]:
        keys = list(keys)
        values = await asyncio.gather(*(self.aget(key, _MISSING, version) for key in keys))
        return {
            key: value for key, value in zip(keys, values, strict=True) if value is not _MISSING
        }

    async def aset_many(
        self, data: Mapping[str, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[str]:
        await asyncio.gather(
            *(self.aset(key, value, timeout, version) for key, value in data.items())
        )
        return []

    async def adelete_many(self, keys: Iterable[str], version: int | None = None) -> None:
        store_keys = [self._store_key(key, version) for key in keys]
        if store_keys:
            await self._command("delete", *store_keys)

    async def aclear(self) -> None:
        self.clear()

    # The sync API: the same commands, run on the service's loop.

    def add(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        return bool(self._sync(self.aadd(key, value, timeout, version)))

    def get(self, key: str, default: Any = None, version: int | None = None) -> Any:
        return self._sync(self.aget(key, default, version))

    def set(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> None:
        self._sync(self.aset(key, value, timeout, version))

    def touch(self, key: str, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return bool(self._sync(self.atouch(key, timeout, version)))

    def delete(self, key: str, version: int | None = None) -> bool:
        return bool(self._sync(self.adelete(key, version)))

    def has_key(self, key: str, version: int | None = None) -> bool:
        return bool(self._sync(self.ahas_key(key, version)))

    def incr(self, key: str, delta: int = 1, version: int | None = None) -> int:
        return int(self._sync(self.aincr(key, delta, version)))

    def get_many(self, keys: Iterable[str], version: int | None = None) -> dict[str, Any]:
        found: dict[str, Any] = self._sync(self.aget_many(keys, version))
        return found

    def set_many(
        self, data: Mapping[str, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[str]:
        failed: list[str] = self._sync(self.aset_many(data, timeout, version))
        return failed

    def delete_many(self, keys: Iterable[str], version: int | None = None) -> None:
        self._sync(self.adelete_many(keys, version))

    def clear(self) -> None:
        raise NotImplementedError(
            "the shared store cannot delete only this service's cache entries (a flush would "
            "end every session): change the cache VERSION, or let the entries expire"
        )


_MISSING = object()


def encode(value: Any) -> bytes:
    """JSON, never pickle (the store is shared); ``TypeError`` names what JSON cannot hold."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"cache values are stored as JSON (str, int, float, bool, None, and lists and "
            f"dicts of them): {exc}"
        ) from None
