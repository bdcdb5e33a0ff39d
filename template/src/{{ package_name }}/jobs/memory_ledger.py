"""Run records and the example job's data in this process (development only, like memory_lock)."""

from .ledger import JobLedger, Rollup, RunRecord


class MemoryLedger:
    def __init__(self) -> None:
        self._runs: dict[str, RunRecord] = {}
        self._last: dict[str, str] = {}
        self._pending = 0
        self._total = 0
        self._rollups: dict[str, dict[str, Rollup]] = {}
        self._fence: dict[str, int] = {}

    async def save_run(self, run: RunRecord) -> bool:
        stored = self._runs.get(run.idempotency_key)
        if stored is not None and stored.fencing_token > run.fencing_token:
            return False
        self._runs[run.idempotency_key] = run
        self._last[run.job] = run.idempotency_key
        return True

    async def get_run(self, idempotency_key: str) -> RunRecord | None:
        return self._runs.get(idempotency_key)

    async def last_run(self, job: str) -> RunRecord | None:
        key = self._last.get(job)
        return self._runs.get(key) if key else None

    async def add_events(self, count: int) -> None:
        self._pending += count

    async def rollup_events(
        self, job: str, idempotency_key: str, fencing_token: int
    ) -> Rollup | None:
        done = self._rollups.setdefault(job, {})
        if fencing_token < self._fence.get(job, 0) or idempotency_key in done:
            return None
        self._fence[job] = fencing_token
        rollup = Rollup(idempotency_key, self._pending, fencing_token)
        self._total += self._pending
        self._pending = 0
        done[idempotency_key] = rollup
        return rollup

    async def rollups(self, job: str) -> list[Rollup]:
        return sorted(self._rollups.get(job, {}).values(), key=lambda r: r.idempotency_key)

    async def total_events(self) -> int:
        return self._total

    async def close(self) -> None:
        return None


def from_url(url: str, namespace: str, timeout_seconds: float, retention_seconds: int) -> JobLedger:
    return MemoryLedger()
