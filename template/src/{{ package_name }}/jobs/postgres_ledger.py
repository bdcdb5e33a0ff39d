"""Run records and the example job's data in PostgreSQL (next to the advisory locks).

Tables (created on first use, see ``locks.postgres_lock.JOBS_SCHEMA``): ``job_runs`` (one row
per idempotency key, the record as JSON), ``job_event_counters``, ``job_rollups`` (primary key:
the idempotency key) and ``job_fences`` (newest fencing token that wrote, per job). The rollup is
one transaction: fence check, key insert, counter move. A run record is written only over one
with an older or equal fencing token (a conditional upsert).
"""

import asyncio
import json

import asyncpg

from ..locks import LockUnavailable
from ..locks.postgres_lock import ensure_schema, plain_url
from .ledger import JobLedger, Rollup, RunRecord

LEDGER_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)

SAVE_RUN = """
INSERT INTO job_runs (idempotency_key, job, record, saved_at) VALUES ($1, $2, $3::jsonb, now())
ON CONFLICT (idempotency_key) DO UPDATE SET record = EXCLUDED.record, saved_at = now()
WHERE (job_runs.record ->> 'fencing_token')::bigint <= (EXCLUDED.record ->> 'fencing_token')::bigint
RETURNING 1
"""
PRUNE_RUNS = "DELETE FROM job_runs WHERE job = $1 AND saved_at < now() - make_interval(secs => $2)"
LAST_RUN = "SELECT record FROM job_runs WHERE job = $1 ORDER BY saved_at DESC LIMIT 1"
FENCE = """
INSERT INTO job_fences (job, fencing_token) VALUES ($1, $2)
ON CONFLICT (job) DO UPDATE SET fencing_token = EXCLUDED.fencing_token
WHERE job_fences.fencing_token <= EXCLUDED.fencing_token
RETURNING fencing_token
"""
CLAIM_KEY = """
INSERT INTO job_rollups (idempotency_key, job, events, fencing_token) VALUES ($1, $2, 0, $3)
ON CONFLICT (idempotency_key) DO NOTHING RETURNING 1
"""
MOVE_PENDING = """
WITH old AS (SELECT pending FROM job_event_counters WHERE name = 'events' FOR UPDATE)
UPDATE job_event_counters AS c SET pending = 0, total = c.total + old.pending
FROM old WHERE c.name = 'events' RETURNING old.pending
"""


class PostgresLedger:
    def __init__(self, url: str, timeout_seconds: float, retention_seconds: int) -> None:
        self._url = plain_url(url)
        self._timeout = timeout_seconds
        self._retention = retention_seconds
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def _get_pool(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                pool = await asyncpg.create_pool(
                    self._url,
                    min_size=0,
                    max_size=2,  # per process, on top of DB_POOL_SIZE (README: connection budget)
                    timeout=self._timeout,
                    command_timeout=self._timeout,
                    server_settings={"application_name": "job-ledger"},
                )
                async with pool.acquire() as connection:
                    await ensure_schema(connection)
                self._pool = pool
            return self._pool

    async def _fetchval(self, sql: str, *args: object) -> object:
        try:
            pool = await self._get_pool()
            async with pool.acquire() as connection:
                return await connection.fetchval(sql, *args)
        except LEDGER_ERRORS as exc:
            raise LockUnavailable(f"postgresql job ledger failed: {exc}") from exc

    async def save_run(self, run: RunRecord) -> bool:
        try:
            pool = await self._get_pool()
            async with pool.acquire() as connection, connection.transaction():
                saved = await connection.fetchval(
                    SAVE_RUN, run.idempotency_key, run.job, json.dumps(run.to_json())
                )
                await connection.execute(PRUNE_RUNS, run.job, float(self._retention))
        except LEDGER_ERRORS as exc:
            raise LockUnavailable(f"postgresql run record failed: {exc}") from exc
        return saved is not None

    async def get_run(self, idempotency_key: str) -> RunRecord | None:
        raw = await self._fetchval(
            "SELECT record FROM job_runs WHERE idempotency_key = $1", idempotency_key
        )
        return RunRecord.from_json(json.loads(str(raw))) if raw is not None else None

    async def last_run(self, job: str) -> RunRecord | None:
        raw = await self._fetchval(LAST_RUN, job)
        return RunRecord.from_json(json.loads(str(raw))) if raw is not None else None

    async def add_events(self, count: int) -> None:
        await self._fetchval(
            "UPDATE job_event_counters SET pending = pending + $1 WHERE name = 'events'", count
        )

    async def rollup_events(
        self, job: str, idempotency_key: str, fencing_token: int
    ) -> Rollup | None:
        try:
            pool = await self._get_pool()
            async with pool.acquire() as connection:
                transaction = connection.transaction()
                await transaction.start()
                try:
                    fenced = await connection.fetchval(FENCE, job, fencing_token)
                    claimed = fenced is not None and await connection.fetchval(
                        CLAIM_KEY, idempotency_key, job, fencing_token
                    )
                    if not claimed:
                        await transaction.rollback()
                        return None
                    moved = int(await connection.fetchval(MOVE_PENDING) or 0)
                    await connection.execute(
                        "UPDATE job_rollups SET events = $2 WHERE idempotency_key = $1",
                        idempotency_key,
                        moved,
                    )
                except BaseException:
                    await transaction.rollback()
                    raise
                await transaction.commit()
        except LEDGER_ERRORS as exc:
            raise LockUnavailable(f"postgresql rollup failed: {exc}") from exc
        return Rollup(idempotency_key, moved, fencing_token)

    async def rollups(self, job: str) -> list[Rollup]:
        try:
            pool = await self._get_pool()
            async with pool.acquire() as connection:
                rows = await connection.fetch(
                    "SELECT idempotency_key, events, fencing_token FROM job_rollups "
                    "WHERE job = $1 ORDER BY idempotency_key",
                    job,
                )
        except LEDGER_ERRORS as exc:
            raise LockUnavailable(f"postgresql rollups failed: {exc}") from exc
        return [
            Rollup(r["idempotency_key"], int(r["events"]), int(r["fencing_token"])) for r in rows
        ]

    async def total_events(self) -> int:
        total = await self._fetchval("SELECT total FROM job_event_counters WHERE name = 'events'")
        return int(str(total or 0))

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def from_url(url: str, namespace: str, timeout_seconds: float, retention_seconds: int) -> JobLedger:
    # Tables are per database; the namespace separates services sharing a Redis, not a database.
    return PostgresLedger(url, timeout_seconds, retention_seconds)
