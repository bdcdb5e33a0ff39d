"""In-process locks for development (``LOCK_URL`` unset and no shared store): one process only.

Production refuses it (``jobs.settings``): replicas would each hold their own lock.
"""

import secrets
import time

from . import Lease, LockBackend


class MemoryLockBackend:
    def __init__(self) -> None:
        self._held: dict[str, tuple[str, float]] = {}
        self._fencing: dict[str, int] = {}

    def _owner(self, name: str) -> str | None:
        entry = self._held.get(name)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    async def acquire(self, name: str, ttl_seconds: float) -> Lease | None:
        if self._owner(name) is not None:
            return None
        owner = secrets.token_hex(16)
        self._held[name] = (owner, time.monotonic() + ttl_seconds)
        self._fencing[name] = self._fencing.get(name, 0) + 1
        return Lease(name, owner, self._fencing[name], ttl_seconds)

    async def renew(self, lease: Lease) -> bool:
        if self._owner(lease.name) != lease.owner:
            return False
        self._held[lease.name] = (lease.owner, time.monotonic() + lease.ttl_seconds)
        return True

    async def release(self, lease: Lease) -> bool:
        if self._owner(lease.name) != lease.owner:
            return False
        del self._held[lease.name]
        return True

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


def from_url(url: str, timeout_seconds: float) -> LockBackend:
    return MemoryLockBackend()
