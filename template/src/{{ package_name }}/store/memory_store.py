"""In-process store for development and tests. Each process has its own: never for production."""

import time
from collections.abc import Callable

from . import KeyValueStore


class MemoryStore:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        # Seconds on a monotonic clock; tests pass one they advance instead of sleeping.
        self.clock = clock
        self._items: dict[str, tuple[bytes, float]] = {}

    async def get(self, key: str) -> bytes | None:
        item = self._items.get(key)
        if item is None:
            return None
        value, expires_at = item
        if self.clock() >= expires_at:
            del self._items[key]
            return None
        return value

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        self._items[key] = (value, self.clock() + ttl_seconds)

    async def incr(self, key: str, amount: int, ttl_seconds: int) -> int:
        # No await between the read and the write: atomic within the event loop.
        current = await self.get(key)
        expires_at = self._items[key][1] if current is not None else self.clock() + ttl_seconds
        value = int(current or b"0") + amount
        self._items[key] = (str(value).encode(), expires_at)
        return value

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._items.pop(key, None)

    # Conditional writes: one event loop, no await between check and write, so each is atomic.

    async def add(self, key: str, value: bytes, ttl_seconds: int) -> bool:
        if await self.get(key) is not None:
            return False
        await self.set(key, value, ttl_seconds)
        return True

    async def compare_and_set(
        self, key: str, expected: bytes, value: bytes, ttl_seconds: int
    ) -> bool:
        if await self.get(key) != expected:
            return False
        await self.set(key, value, ttl_seconds)
        return True

    async def remove(self, key: str) -> bool:
        present = await self.get(key) is not None
        self._items.pop(key, None)
        return present

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._items.clear()


def from_url(url: str, timeout_seconds: float, max_connections: int) -> KeyValueStore:
    return MemoryStore()  # in this process: no connection, no timeout
