"""Distributed locks for scheduled jobs: one holder at a time across every replica.

A lock is a lease: taken with a time to live, renewed while its holder works (``guard``), and
released only by its owner (the owner token is checked atomically on the server). Every
acquisition also hands out a fencing token that only grows, so an effect written by a holder that
lost its lock can be told apart from the current holder's. A holder killed with SIGKILL blocks no
one past the TTL.

One module per backend, chosen by the URL scheme of ``LOCK_URL`` (see ``jobs.settings``):
``redis://``/``valkey://`` (``redis_lock``: Lua scripts), ``postgresql://`` (``postgres_lock``:
advisory locks, when the shared store is Memcached), ``memory://`` (``memory_lock``: one process,
development only). Only the backends of this service's answers are installed.
"""

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Protocol

from ..config import ConfigError


class LockUnavailable(Exception):
    """The lock backend could not be reached or did not answer in time."""


class LockLost(Exception):
    """The lease expired or was taken over: the holder must stop before its next effect."""


@dataclass(frozen=True)
class Lease:
    """A held lock: ``owner`` proves ownership, ``fencing_token`` orders holders over time."""

    name: str
    owner: str
    fencing_token: int
    ttl_seconds: float


class LockBackend(Protocol):
    async def acquire(self, name: str, ttl_seconds: float) -> Lease | None:
        """Take the lock if it is free (None when another owner holds it)."""
        ...

    async def renew(self, lease: Lease) -> bool:
        """Extend the lease by its TTL; False when the lease is no longer ours."""
        ...

    async def release(self, lease: Lease) -> bool:
        """Free the lock if we still own it; False (never an exception) when we did not."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


_MODULE_BY_SCHEME = {
    "memory": "memory_lock",
    "redis": "redis_lock",
    "rediss": "redis_lock",
    "valkey": "redis_lock",
    "valkeys": "redis_lock",
    "postgresql": "postgres_lock",
    "postgres": "postgres_lock",
    "postgresql+asyncpg": "postgres_lock",
}


def backend_module(url: str, variable: str = "LOCK_URL") -> str:
    """The module name serving ``url``'s scheme (in this package or ``jobs``' ledgers)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    module = _MODULE_BY_SCHEME.get(scheme)
    if module is None:
        allowed = ", ".join(f"{s}://" for s in _MODULE_BY_SCHEME)
        raise ConfigError([f"{variable}: unknown scheme {scheme!r}; expected one of {allowed}"])
    return module


def backend_available(url: str) -> bool:
    """Whether this service was built with the lock backend for ``url`` (its module exists)."""
    module = _MODULE_BY_SCHEME.get(url.split("://", 1)[0].lower() if "://" in url else "")
    return module is not None and importlib.util.find_spec(f".{module}", __name__) is not None


def open_lock_backend(url: str, timeout_seconds: float) -> LockBackend:
    module_name = backend_module(url)
    try:
        module = importlib.import_module(f".{module_name}", __name__)
    except ModuleNotFoundError:
        scheme = url.split("://", 1)[0]
        message = f"LOCK_URL: {scheme}:// is not available in this service (built for another)"
        raise ConfigError([message]) from None
    backend: LockBackend = module.from_url(url, timeout_seconds)
    return backend
