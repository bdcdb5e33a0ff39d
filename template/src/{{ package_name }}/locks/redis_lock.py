"""Locks in Redis or Valkey: SET NX PX plus Lua scripts, so every check-and-act is atomic.

- acquire: ``SET key owner NX PX ttl`` and, only when it succeeded, ``INCR`` the fencing counter,
  in one script (a failed attempt does not consume a token).
- renew: ``PEXPIRE`` only when the key still holds our owner token.
- release: ``DEL`` only when the key still holds our owner token; a lock that expired and was
  taken by another replica is left alone (redis-py's ``Lock`` raises LockNotOwnedError here).

The TTL is kept by the server (``PX``), never by comparing wall clocks between replicas.
"""

import secrets

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..store.redis_store import JOBS_MAX_CONNECTIONS, redis_client
from . import Lease, LockBackend, LockUnavailable

ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return redis.call('INCR', KEYS[2])
end
return 0
"""

RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def lock_key(name: str) -> str:
    return f"{name}:lock"


def fencing_key(name: str) -> str:
    return f"{name}:fencing"


class RedisLockBackend:
    def __init__(self, client: Redis) -> None:
        self._client = client
        self._acquire = client.register_script(ACQUIRE)
        self._renew = client.register_script(RENEW)
        self._release = client.register_script(RELEASE)

    async def acquire(self, name: str, ttl_seconds: float) -> Lease | None:
        owner = secrets.token_hex(16)
        try:
            token = await self._acquire(
                keys=[lock_key(name), fencing_key(name)], args=[owner, _ms(ttl_seconds)]
            )
        except (RedisError, OSError) as exc:
            raise LockUnavailable(f"redis lock acquire failed: {exc}") from exc
        return Lease(name, owner, int(token), ttl_seconds) if int(token) else None

    async def renew(self, lease: Lease) -> bool:
        try:
            renewed = await self._renew(
                keys=[lock_key(lease.name)], args=[lease.owner, _ms(lease.ttl_seconds)]
            )
        except (RedisError, OSError) as exc:
            raise LockUnavailable(f"redis lock renew failed: {exc}") from exc
        return bool(renewed)

    async def release(self, lease: Lease) -> bool:
        try:
            released = await self._release(keys=[lock_key(lease.name)], args=[lease.owner])
        except (RedisError, OSError) as exc:
            raise LockUnavailable(f"redis lock release failed: {exc}") from exc
        return bool(released)

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            raise LockUnavailable(f"redis PING failed: {exc}") from exc

    async def close(self) -> None:
        await self._client.aclose()


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def from_url(url: str, timeout_seconds: float) -> LockBackend:
    return RedisLockBackend(redis_client(url, timeout_seconds, JOBS_MAX_CONNECTIONS))
