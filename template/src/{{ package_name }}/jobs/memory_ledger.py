"""Run records, written values and counters in this process (development only, like memory_lock)."""

from .ledger import JobLedger, RunRecord, Written


class MemoryLedger:
    def __init__(self) -> None:
        self._runs: dict[str, RunRecord] = {}
        self._last: dict[str, str] = {}
        self._counters: dict[str, int] = {}
        self._written: dict[str, dict[str, Written]] = {}  # insertion order is write order
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

    async def write_once(
        self, job: str, idempotency_key: str, fencing_token: int, value: int
    ) -> bool:
        done = self._written.setdefault(job, {})
        if fencing_token < self._fence.get(job, 0) or idempotency_key in done:
            return False
        self._fence[job] = fencing_token
        done[idempotency_key] = Written(idempotency_key, value, fencing_token)
        return True

    async def written(self, job: str) -> list[Written]:
        return list(self._written.get(job, {}).values())

    async def newest(self, job: str) -> Written | None:
        done = self._written.get(job)
        return next(reversed(done.values())) if done else None

    async def add_to_counter(self, name: str, amount: int) -> int:
        self._counters[name] = self._counters.get(name, 0) + amount
        return self._counters[name]

    async def read_counter(self, name: str) -> int:
        return self._counters.get(name, 0)

    async def close(self) -> None:
        return None


def from_url(url: str, namespace: str, timeout_seconds: float, retention_seconds: int) -> JobLedger:
    return MemoryLedger()
