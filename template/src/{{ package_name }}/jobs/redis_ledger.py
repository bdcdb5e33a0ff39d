"""Run records, written values and counters in Redis or Valkey (next to the locks).

Keys, under ``<namespace>:jobs:``: ``run:<idempotency key>`` (JSON, expires after the retention),
``last:<job>`` (key of the job's last run), ``counter:<name>``, ``written:<job>`` (hash:
idempotency key -> value, fencing token and write order), ``fence:<job>`` (newest fencing token
that wrote). ``write_once`` is one Lua script: check key and token, record the value. Saving a
run is one script too: written only over a record with an older or equal fencing token.
"""

import json

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..locks import LockUnavailable
from ..store.redis_store import JOBS_MAX_CONNECTIONS, redis_client
from .ledger import JobLedger, RunRecord, Written

# KEYS: written hash, fence, newest entry. ARGV: idempotency key, fencing token, value.
# Returns 0 when refused (stale token, or the key already holds a value), else 1. The value is
# kept as a string (cjson would round a large number); seq keeps the order of the writes.
WRITE_ONCE = """
local newest = tonumber(redis.call('GET', KEYS[2]) or '0')
local token = tonumber(ARGV[2])
if token < newest or redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
    return 0
end
redis.call('SET', KEYS[2], token)
local seq = redis.call('HLEN', KEYS[1]) + 1
local entry = {value = ARGV[3], fencing_token = ARGV[2], seq = seq}
entry['idempotency_key'] = ARGV[1]
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(entry))
redis.call('SET', KEYS[3], cjson.encode(entry))
return 1
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
        self._write_once = client.register_script(WRITE_ONCE)
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

    async def write_once(
        self, job: str, idempotency_key: str, fencing_token: int, value: int
    ) -> bool:
        keys = [self._key("written", job), self._key("fence", job), self._key("newest", job)]
        try:
            stored = await self._write_once(keys=keys, args=[idempotency_key, fencing_token, value])
        except (RedisError, OSError) as exc:
            raise LockUnavailable(f"redis write_once failed: {exc}") from exc
        return bool(stored)

    async def written(self, job: str) -> list[Written]:
        try:
            entries = await self._client.hgetall(self._key("written", job))
        except (RedisError, OSError) as exc:
            raise LockUnavailable(f"redis HGETALL failed: {exc}") from exc
        found = []
        for key, raw in entries.items():
            data = json.loads(raw)
            name = key.decode() if isinstance(key, bytes) else str(key)
            entry = Written(name, int(data["value"]), int(data["fencing_token"]))
            found.append((int(data["seq"]), entry))
        return [entry for _, entry in sorted(found, key=lambda pair: pair[0])]

    async def newest(self, job: str) -> Written | None:
        try:
            raw = await self._client.get(self._key("newest", job))
        except (RedisError, OSError) as exc:
            raise LockUnavailable(f"redis GET failed: {exc}") from exc
        if raw is None:
            return None
        data = json.loads(raw)
        return Written(data["idempotency_key"], int(data["value"]), int(data["fencing_token"]))

    async def add_to_counter(self, name: str, amount: int) -> int:
        try:
            return int(await self._client.incrby(self._key("counter", name), amount))
        except (RedisError, OSError) as exc:
            raise LockUnavailable(f"redis INCRBY failed: {exc}") from exc

    async def read_counter(self, name: str) -> int:
        try:
            raw = await self._client.get(self._key("counter", name))
        except (RedisError, OSError) as exc:
            raise LockUnavailable(f"redis GET failed: {exc}") from exc
        return int(raw or 0)

    async def close(self) -> None:
        await self._client.aclose()


def from_url(url: str, namespace: str, timeout_seconds: float, retention_seconds: int) -> JobLedger:
    client = redis_client(url, timeout_seconds, JOBS_MAX_CONNECTIONS)
    return RedisLedger(client, namespace, retention_seconds)
