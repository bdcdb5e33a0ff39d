"""Run records and the example job's data in Redis or Valkey (next to the locks).

Keys, under ``<namespace>:jobs:``: ``run:<idempotency key>`` (JSON, expires after the retention),
``last:<job>`` (key of the job's last run), ``events:pending`` / ``events:total`` (counters),
``rollups:<job>`` (hash: idempotency key -> rollup), ``fence:<job>`` (newest fencing token that
wrote). The rollup is one Lua script: check key and token, move the pending count, record it.
Saving a run is one script too: written only over a record with an older or equal fencing token.
"""

import json

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..locks import LockUnavailable
from ..store.redis_store import redis_client
from .ledger import JobLedger, Rollup, RunRecord

# KEYS: rollups hash, fence, pending, total. ARGV: idempotency key, fencing token.
# Returns -1 when refused (stale token or key already rolled up), else the events moved.
ROLLUP = """
local newest = tonumber(redis.call('GET', KEYS[2]) or '0')
local token = tonumber(ARGV[2])
if token < newest or redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
    return -1
end
redis.call('SET', KEYS[2], token)
local pending = tonumber(redis.call('GET', KEYS[3]) or '0')
if pending > 0 then
    redis.call('DECRBY', KEYS[3], pending)
    redis.call('INCRBY', KEYS[4], pending)
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({events = pending, fencing_token = token}))
return pending
"""

# KEYS: run record, job's last run. ARGV: record JSON, fencing token, retention, idempotency key.
SAVE_RUN = """
local stored = redis.call('GET', KEYS[1])
if stored and tonumber(cjson.decode(stored)['fencing_token']) > tonumber(ARGV[2]) then
    return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[3])
return 1
"""


class RedisLedger:
    def __init__(self, client: Redis, namespace: str, retention_seconds: int) -> None:
        self._client = client
        self._prefix = f"{namespace}:jobs:"
        self._retention = retention_seconds
        self._rollup = client.register_script(ROLLUP)
        self._save_run = client.register_script(SAVE_RUN)

    def _key(self, *parts: str) -> str:
        return self._prefix + ":".join(parts)

    async def save_run(self, run: RunRecord) -> bool:
        keys = [self._key("run", run.idempotency_key), self._key("last", run.job)]
        args: list[str | int] = [
            json.dumps(run.to_json()),
            run.fencing_token,
            self._retention,
            run.idempotency_key,
        ]
        try:
            return bool(await self._save_run(keys=keys, args=args))
        except (RedisError, OSError) as exc:
            raise LockUnavailable(f"redis run record failed: {exc}") from exc

    async def get_run(self, idempotency_key: str) -> RunRecord | None:
        try:
            raw = await self._client.get(self._key("run", idempotency_key))
        except (RedisError, OSError) as exc:
            raise LockUnavailable(f"redis run lookup failed: {exc}") from exc
        return RunRecord.from_json(json.loads(raw)) if raw else None

    async def last_run(self, job: str) -> RunRecord | None:
        try:
            key = await self._client.get(self._key("last", job))
        except (RedisError, OSError) as exc:
            raise LockUnavailable(f"redis run lookup failed: {exc}") from exc
        if key is None:
            return None
        return await self.get_run(key.decode() if isinstance(key, bytes) else str(key))

    async def add_events(self, count: int) -> None:
        try:
            await self._client.incrby(self._key("events", "pending"), count)
        except (RedisError, OSError) as exc:
            raise LockUnavailable(f"redis INCRBY failed: {exc}") from exc

    async def rollup_events(
        self, job: str, idempotency_key: str, fencing_token: int
    ) -> Rollup | None:
        keys = [
            self._key("rollups", job),
            self._key("fence", job),
            self._key("events", "pending"),
            self._key("events", "total"),
        ]
        try:
            moved = int(await self._rollup(keys=keys, args=[idempotency_key, fencing_token]))
        except (RedisError, OSError) as exc:
            raise LockUnavailable(f"redis rollup failed: {exc}") from exc
        return None if moved < 0 else Rollup(idempotency_key, moved, fencing_token)

    async def rollups(self, job: str) -> list[Rollup]:
        try:
            entries = await self._client.hgetall(self._key("rollups", job))
        except (RedisError, OSError) as exc:
            raise LockUnavailable(f"redis HGETALL failed: {exc}") from exc
        found = []
        for key, raw in entries.items():
            data = json.loads(raw)
            name = key.decode() if isinstance(key, bytes) else str(key)
            found.append(Rollup(name, int(data["events"]), int(data["fencing_token"])))
        return sorted(found, key=lambda r: r.idempotency_key)

    async def total_events(self) -> int:
        try:
            raw = await self._client.get(self._key("events", "total"))
        except (RedisError, OSError) as exc:
            raise LockUnavailable(f"redis GET failed: {exc}") from exc
        return int(raw or 0)

    async def close(self) -> None:
        await self._client.aclose()


def from_url(url: str, namespace: str, timeout_seconds: float, retention_seconds: int) -> JobLedger:
    return RedisLedger(redis_client(url, timeout_seconds), namespace, retention_seconds)
