"""Login throttling in the shared store, so the limit holds however many replicas serve it.

Each attempt is counted *before* the password is checked, with one atomic increment per key
(``KeyValueStore.incr``), so concurrent attempts on several replicas cannot all slip under the
limit; a successful attempt gives its count back, so the counters hold failed (and refused)
attempts. Two limits:

- per account (the username, case-folded): stops guessing one user's password from many
  addresses. An attacker can lock an account out for one window; keep the window short.
- per client address (as the service sees it, after ``FORWARDED_ALLOW_IPS``): stops one client
  trying one password on many accounts. Keep it well above what a NAT of real users needs.
  An IPv6 client is counted by its /64, the block one host usually controls.

Counters live in fixed windows (the window's number is part of the key, which expires with the
window), so the refusal says exactly when to retry (``Retry-After``). Keys hold hashes, never the
username or address.
"""

import hashlib
import ipaddress
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the store package imports config, which imports this package
    from ..store import KeyValueStore


@dataclass(frozen=True)
class Limit:
    max_failures: int
    window_seconds: int


class LoginThrottled(Exception):
    """Too many failed attempts: retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"too many login attempts, retry after {retry_after} s")


@dataclass(frozen=True)
class _Counter:
    key: str
    ttl: int
    limit: int
    retry_after: int


class LoginAttempt:
    """One counted attempt: call ``succeeded()`` when the credentials were right."""

    def __init__(self, store: "KeyValueStore", counters: list[_Counter]) -> None:
        self._store = store
        self._counters = counters

    async def succeeded(self) -> None:
        for counter in self._counters:
            await self._store.incr(counter.key, -1, counter.ttl)


def client_key(address: str) -> str:
    """The address a client is counted by: itself, or its /64 for IPv6."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class LoginThrottle:
    def __init__(
        self,
        store: "KeyValueStore",
        namespace: str,
        per_account: Limit,
        per_client: Limit,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._prefix = f"{namespace}:login-failures:"
        self.per_account = per_account
        self.per_client = per_client
        self._clock = clock

    def _counter(self, kind: str, value: str, limit: Limit, now: float) -> _Counter:
        window = int(now // limit.window_seconds)
        ends_at = (window + 1) * limit.window_seconds
        digest = hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()
        return _Counter(
            key=f"{self._prefix}{kind}:{digest}:{window}",
            ttl=max(1, math.ceil(ends_at - now)) + 1,  # outlive the window, never shorten it
            limit=limit.max_failures,
            retry_after=max(1, math.ceil(ends_at - now)),
        )

    async def attempt(self, account: str, client: str) -> LoginAttempt:
        """Count an attempt, or raise LoginThrottled when a limit is already reached."""
        now = self._clock()
        counters = [
            self._counter("account", account.casefold(), self.per_account, now),
            self._counter("client", client_key(client), self.per_client, now),
        ]
        refused = [c for c in counters if await self.store.incr(c.key, 1, c.ttl) > c.limit]
        if refused:
            raise LoginThrottled(max(c.retry_after for c in refused))
        return LoginAttempt(self.store, counters)
