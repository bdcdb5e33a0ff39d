"""Memcached through pymemcache, run in worker threads.

pymemcache closes a connection on any timeout or error, so a late answer can never be read as the
reply to a later command (a risk with clients that leave cancelled connections in their pool).
The store has as many worker threads as pooled connections (``STORE_MAX_CONNECTIONS`` per server
process): a burst of requests queues for a thread instead of opening more connections.
Memcached keeps nothing across restarts, and evicts under memory pressure unless started with
``-M`` (as Compose runs it): sessions can be lost.
"""

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar
from urllib.parse import urlsplit

from pymemcache.client.base import PooledClient
from pymemcache.client.retrying import RetryingClient
from pymemcache.exceptions import MemcacheError, MemcacheUnexpectedCloseError

from . import KeyValueStore, StoreUnavailable

T = TypeVar("T")

DEFAULT_PORT = 11211


class MemcachedStore:
    def __init__(
        self,
        client: RetryingClient,
        pool: PooledClient,
        max_connections: int,
        timeout_seconds: float,
    ) -> None:
        self._client = client
        self._pool = pool
        # One thread per pooled connection, and never more commands at once than connections:
        # a command waits up to the timeout for a free one, like redis-py's blocking pool.
        self._threads = ThreadPoolExecutor(max_connections, thread_name_prefix="memcached")
        self._free = asyncio.Semaphore(max_connections)
        self._timeout_seconds = timeout_seconds

    async def _run(self, operation: str, call: Callable[[], T]) -> T:
        try:
            async with asyncio.timeout(self._timeout_seconds):
                await self._free.acquire()
        except TimeoutError:
            raise StoreUnavailable(
                f"memcached {operation} failed: no free connection within {self._timeout_seconds} s"
            ) from None
        try:
            return await asyncio.get_running_loop().run_in_executor(self._threads, call)
        except (MemcacheUnexpectedCloseError, OSError) as exc:
            # A timeout or a broken connection: a server restarted at a new address (a
            # container or pod given a new IP) leaves every pooled connection hanging, and each
            # would fail one request after a full timeout. Close them all; the next commands
            # connect afresh.
            self._pool.client_pool.clear()
            raise StoreUnavailable(f"memcached {operation} failed: {exc}") from exc
        except MemcacheError as exc:
            raise StoreUnavailable(f"memcached {operation} failed: {exc}") from exc
        finally:
            self._free.release()

    async def get(self, key: str) -> bytes | None:
        value: bytes | None = await self._run("get", lambda: self._client.get(key))
        return value

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        await self._run("set", lambda: self._client.set(key, value, expire=ttl_seconds))

    async def incr(self, key: str, amount: int, ttl_seconds: int) -> int:
        # incr/decr are atomic on the server and keep the item's expiry; a missing item is
        # created with ``add`` (a no-op when another client created it first), then counted.
        def count() -> int | None:
            if amount >= 0:
                value: int | None = self._client.incr(key, amount, noreply=False)
            else:
                value = self._client.decr(key, -amount, noreply=False)  # floors at 0
            return value

        for _ in range(3):
            value = await self._run("incr", count)
            if value is not None:
                return int(value)
            await self._run("add", lambda: self._client.add(key, b"0", ttl_seconds, noreply=False))
        raise StoreUnavailable(f"memcached incr failed: {key} vanished three times in a row")

    async def delete(self, *keys: str) -> None:
        if keys:
            await self._run("delete", lambda: self._client.delete_many(list(keys)))

    # Conditional writes: add, gets + cas (the server's version of the item), delete's reply.

    async def add(self, key: str, value: bytes, ttl_seconds: int) -> bool:
        added = await self._run(
            "add", lambda: self._client.add(key, value, expire=ttl_seconds, noreply=False)
        )
        return bool(added)

    async def compare_and_set(
        self, key: str, expected: bytes, value: bytes, ttl_seconds: int
    ) -> bool:
        def check_and_write() -> bool:
            current, version = self._client.gets(key)
            if current != expected or version is None:
                return False
            # cas refuses the write if anyone wrote or deleted the item since our gets.
            return bool(self._client.cas(key, value, version, expire=ttl_seconds, noreply=False))

        return await self._run("cas", check_and_write)

    async def remove(self, key: str) -> bool:
        removed = await self._run("delete", lambda: self._client.delete(key, noreply=False))
        return bool(removed)

    async def ping(self) -> None:
        await self._run("version", self._client.version)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._threads, self._client.close)
        self._threads.shutdown(wait=False)


def from_url(url: str, timeout_seconds: float, max_connections: int) -> KeyValueStore:
    parts = urlsplit(url)
    client = PooledClient(
        (parts.hostname or "127.0.0.1", parts.port or DEFAULT_PORT),
        connect_timeout=timeout_seconds,
        timeout=timeout_seconds,
        no_delay=True,
        max_pool_size=max_connections,
        default_noreply=False,  # wait for the server: a write must be stored before we answer
    )
    # A pooled connection that the server closed (it restarted since) fails at its first use;
    # the command is sent again on the next one. Every idle connection may be dead, so as many
    # attempts as the pool holds, plus a new connection: each dead one fails at once, and a down
    # server refuses the connection (not retried). The command never reached the new server, so
    # nothing runs twice; a timeout is not retried (the command may have run).
    retrying = RetryingClient(
        client,
        attempts=max_connections + 1,
        retry_delay=0,
        retry_for=[MemcacheUnexpectedCloseError, ConnectionResetError, BrokenPipeError],
    )
    return MemcachedStore(retrying, client, max_connections, timeout_seconds)
