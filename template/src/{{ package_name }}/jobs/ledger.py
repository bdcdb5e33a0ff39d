"""Run bookkeeping and the jobs' effects, kept where the locks are.

- A run record per idempotency key (one scheduled tick, or one manual run): status, owner,
  fencing token, times, result. A key whose run succeeded is never run again.
- ``write_once``, the one operation a job's effect needs: a value stored under the tick's
  idempotency key together with the lock's fencing token in one atomic step, refused for a key
  that already has one or for a token older than the newest one that wrote for the job, so
  neither a double start nor a holder that lost its lock applies an effect twice. It knows no
  job, so a new job (a module in ``jobs/scheduled/``) never changes a backend.
- Counters (``add_to_counter``, ``read_counter``): values that only grow, for a job's input.
- Run records are fenced the same way: a record is written only over one with an older or equal
  fencing token.

One module per backend, like the locks: ``redis_ledger``, ``postgres_ledger``, ``memory_ledger``.
"""

import importlib
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from ..locks import backend_module


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    LOCK_LOST = "lock_lost"
    INTERRUPTED = "interrupted"


@dataclass
class RunRecord:
    job: str
    idempotency_key: str
    scheduled_for: datetime
    status: RunStatus
    owner: str
    fencing_token: int
    started_at: datetime
    finished_at: datetime | None = None
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("scheduled_for", "started_at", "finished_at"):
            value = data[name]
            data[name] = value.isoformat() if value is not None else None
        data["status"] = str(self.status)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RunRecord":
        finished = data.get("finished_at")
        return cls(
            job=data["job"],
            idempotency_key=data["idempotency_key"],
            scheduled_for=datetime.fromisoformat(data["scheduled_for"]),
            status=RunStatus(data["status"]),
            owner=data["owner"],
            fencing_token=int(data["fencing_token"]),
            started_at=datetime.fromisoformat(data["started_at"]),
            finished_at=datetime.fromisoformat(finished) if finished else None,
            result=dict(data.get("result") or {}),
            error=data.get("error"),
        )


@dataclass(frozen=True)
class Written:
    """A value a job wrote once, under a tick's idempotency key."""

    idempotency_key: str
    value: int
    fencing_token: int


class JobLedger(Protocol):
    async def save_run(self, run: RunRecord) -> bool:
        """Store the run under its idempotency key and make it the job's last run; refused
        (False) when a newer fencing token already wrote that key, so a holder that lost its
        lock without noticing never overwrites the record of the holder that replaced it."""
        ...

    async def get_run(self, idempotency_key: str) -> RunRecord | None: ...

    async def last_run(self, job: str) -> RunRecord | None: ...

    async def write_once(
        self, job: str, idempotency_key: str, fencing_token: int, value: int
    ) -> bool:
        """Store ``value`` under the key, atomically; False when refused: the key already holds
        a value, or a newer fencing token already wrote for this job (a stale lock holder)."""
        ...

    async def written(self, job: str) -> list[Written]:
        """The values the job wrote, oldest first (in the order the ledger accepted them); the
        whole history, for inspection and tests: a job's own path reads ``newest``."""
        ...

    async def newest(self, job: str) -> Written | None:
        """The value the job wrote last, in constant time whatever the history's length."""
        ...

    async def add_to_counter(self, name: str, amount: int) -> int:
        """Add to a counter (created at 0); the new value."""
        ...

    async def read_counter(self, name: str) -> int: ...

    async def close(self) -> None: ...


def open_ledger(
    url: str, namespace: str, timeout_seconds: float, retention_seconds: int
) -> JobLedger:
    module_name = backend_module(url).replace("_lock", "_ledger")
    module = importlib.import_module(f".{module_name}", __package__)
    ledger: JobLedger = module.from_url(url, namespace, timeout_seconds, retention_seconds)
    return ledger
