"""Redis and Valkey (wire-compatible) through redis-py's asyncio client.

Timeouts are set on the socket, so a hung server fails a request quickly instead of piling them up;
redis-py drops a connection that timed out or was cancelled, and reconnects on the next command, so
the service recovers by itself when the store comes back. When one command fails that way, the
pool also drops its idle connections (``DropIdleOnFailurePool``).

The pool is bounded (``STORE_MAX_CONNECTIONS`` per server process): a burst of requests shares the
open connections, each command waiting up to the timeout for a free one, instead of opening one
connection per concurrent request until the server's ``maxclients`` refuses every replica.
"""

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from . import KeyValueStore, StoreUnavailable

# One key per script (KEYS[1]), so it also runs on Redis Cluster. ARGV: expected, value, ttl.
COMPARE_AND_SET = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
    return 1
end
return 0
"""


class RedisStore:
    def __init__(self, client: Redis) -> None:
        self._client = client
        self._compare_and_set = client.register_script(COMPARE_AND_SET)

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self._client.get(key)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis GET failed: {exc}") from exc
        return value.encode() if isinstance(value, str) else value

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        try:
            await self._client.set(key, value, ex=ttl_seconds)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis SET failed: {exc}") from exc

    async def incr(self, key: str, amount: int, ttl_seconds: int) -> int:
        # One MULTI: the key is created with its TTL only when missing (SET NX keeps an existing
        # window's expiry), then INCRBY, which never touches the TTL.
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.set(key, 0, ex=ttl_seconds, nx=True)
                pipe.incrby(key, amount)
                _, value = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis INCRBY failed: {exc}") from exc
        return int(value)

    async def delete(self, *keys: str) -> None:
        if not keys:
            return
        try:
            await self._client.delete(*keys)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis DEL failed: {exc}") from exc

    # Conditional writes: SET NX, a compare-and-set script, DEL's count.

    async def add(self, key: str, value: bytes, ttl_seconds: int) -> bool:
        try:
            return bool(await self._client.set(key, value, ex=ttl_seconds, nx=True))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis SET NX failed: {exc}") from exc

    async def compare_and_set(
        self, key: str, expected: bytes, value: bytes, ttl_seconds: int
    ) -> bool:
        try:
            stored = await self._compare_and_set(keys=[key], args=[expected, value, ttl_seconds])
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis compare-and-set failed: {exc}") from exc
        return bool(stored)

    async def remove(self, key: str) -> bool:
        try:
            return bool(await self._client.delete(key))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis DEL failed: {exc}") from exc

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis PING failed: {exc}") from exc

    async def close(self) -> None:
        await self._client.aclose()


def stale_connection_retry() -> Retry:
    """Send a command once more, on a fresh connection, when its pooled connection turns out to
    be closed (the server restarted since it was opened): the dead connection never reached the
    new server, so nothing runs twice. A timeout is not retried: the command may have run."""
    return Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,))


class DropIdleOnFailurePool(BlockingConnectionPool):
    """A pool that closes its idle connections when a command's connection fails.

    A store restarted at a new address (a container or pod given a new IP) leaves every pooled
    connection hanging: nothing answers on it and nothing resets it, so each would fail one
    request after a full timeout, one after another. The first failure (redis-py disconnects a
    connection that timed out or broke) is taken as news about all of them: the idle ones are
    closed and the next commands connect afresh, resolving the store's name again.
    """

    async def release(self, connection: AbstractConnection) -> None:
        failed = not connection.is_connected
        await super().release(connection)
        if failed:
            await self.disconnect(inuse_connections=False)


# Connections of the job lock client and of the run ledger client, each, per process: their
# commands are few and short (a tick's acquire, a renewal, a run record).
JOBS_MAX_CONNECTIONS = 4


def redis_client(url: str, timeout_seconds: float, max_connections: int) -> Redis:
    """A pooled client for redis://, rediss://, valkey:// or valkeys:// (the same protocol), with
    at most ``max_connections`` connections; a command waits up to ``timeout_seconds`` for one."""
    if url.startswith("valkey"):
        url = "redis" + url.removeprefix("valkey")
    pool = DropIdleOnFailurePool.from_url(
        url,
        max_connections=max_connections,
        # The wait for a free connection: past it, "No connection available" (StoreUnavailable).
        timeout=timeout_seconds,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        health_check_interval=30,
        retry=stale_connection_retry(),
        # redis-py before 6 retries only the errors listed here, whatever ``retry`` says.
        retry_on_error=[RedisConnectionError],
    )
    return Redis.from_pool(pool)


def from_url(url: str, timeout_seconds: float, max_connections: int) -> KeyValueStore:
    return RedisStore(redis_client(url, timeout_seconds, max_connections))
