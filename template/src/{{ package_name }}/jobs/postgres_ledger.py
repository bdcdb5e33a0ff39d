"""Run records, written values and counters in PostgreSQL (next to the advisory locks).

Tables (created on first use, see ``locks.postgres_lock.JOBS_SCHEMA``): ``job_runs`` (one row
per idempotency key, the record as JSON), ``job_counters``, ``job_writes`` (primary key: job and
idempotency key; ``seq`` keeps the order of the writes) and ``job_fences`` (newest fencing token
that wrote, per job). ``write_once`` is one transaction: fence check, then the key's insert. A
run record is written only over one with an older or equal fencing token (a conditional upsert).
"""

import asyncio
import json

import asyncpg

from ..locks import LockUnavailable
from ..locks.postgres_lock import ensure_schema, plain_url
from .ledger import JobLedger, RunRecord, Written

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
INSERT_ONCE = """
INSERT INTO job_writes (job, idempotency_key, value, fencing_token) VALUES ($1, $2, $3, $4)
ON CONFLICT (job, idempotency_key) DO NOTHING RETURNING 1
"""
WRITTEN = """
SELECT idempotency_key, value, fencing_token FROM job_writes WHERE job = $1 ORDER BY seq
"""
NEWEST = """
SELECT idempotency_key, value, fencing_token FROM job_writes WHERE job = $1
ORDER BY seq DESC LIMIT 1
"""
ADD_TO_COUNTER = """
INSERT INTO job_counters (name, value) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET value = job_counters.value + EXCLUDED.value RETURNING value
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

    async def write_once(
        self, job: str, idempotency_key: str, fencing_token: int, value: int
    ) -> bool:
        try:
            pool = await self._get_pool()
            async with pool.acquire() as connection:
                transaction = connection.transaction()
                await transaction.start()
                try:
                    fenced = await connection.fetchval(FENCE, job, fencing_token)
                    stored = fenced is not None and await connection.fetchval(
                        INSERT_ONCE, job, idempotency_key, value, fencing_token
                    )
                except BaseException:
                    await transaction.rollback()
                    raise
                # A refused write leaves the fence as it was: the token wrote nothing.
                await (transaction.commit() if stored else transaction.rollback())
        except LEDGER_ERRORS as exc:
            raise LockUnavailable(f"postgresql write_once failed: {exc}") from exc
        return bool(stored)

    async def written(self, job: str) -> list[Written]:
        try:
            pool = await self._get_pool()
            async with pool.acquire() as connection:
                rows = await connection.fetch(WRITTEN, job)
        except LEDGER_ERRORS as exc:
            raise LockUnavailable(f"postgresql written values failed: {exc}") from exc
        return [
            Written(r["idempotency_key"], int(r["value"]), int(r["fencing_token"])) for r in rows
        ]

    async def newest(self, job: str) -> Written | None:
        try:
            pool = await self._get_pool()
            async with pool.acquire() as connection:
                row = await connection.fetchrow(NEWEST, job)
        except LEDGER_ERRORS as exc:
            raise LockUnavailable(f"postgresql newest value failed: {exc}") from exc
        if row is None:
            return None
        return Written(row["idempotency_key"], int(row["value"]), int(row["fencing_token"]))

    async def add_to_counter(self, name: str, amount: int) -> int:
        return int(str(await self._fetchval(ADD_TO_COUNTER, name, amount)))

    async def read_counter(self, name: str) -> int:
        value = await self._fetchval("SELECT value FROM job_counters WHERE name = $1", name)
        return int(str(value or 0))

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def from_url(url: str, namespace: str, timeout_seconds: float, retention_seconds: int) -> JobLedger:
    # Tables are per database; the namespace separates services sharing a Redis, not a database.
    return PostgresLedger(url, timeout_seconds, retention_seconds)
