"""Scheduled jobs over HTTP: count events for the example job, read job status, run a job now.

``/jobs`` routes need ``Authorization: Bearer <JOBS_ADMIN_TOKEN>``; without the variable they
answer 403 (disabled). A run started here takes the job's lock like any scheduled run; it gets an
idempotency key of its own unless ``scheduled_for`` names a tick (re-running a tick that
succeeded is then refused as already done).
"""

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Request, status
from pydantic import BaseModel, Field

from ..jobs.ledger import RunRecord
from ..jobs.registry import REGISTRY, Job
from ..jobs.runner import Outcome
from ..jobs.runtime import JobsRuntime
from ..jobs.scheduled.rollup_events import add_events, events_total
from ..security.keys import matches_any

JobName = Annotated[str, Path(pattern=r"^[a-z0-9_]{1,64}$")]


# Async, like every dependency that does no blocking work: no worker-thread hop per request.
async def get_runtime(request: Request) -> JobsRuntime:
    runtime: JobsRuntime = request.app.state.jobs
    return runtime


RuntimeDep = Annotated[JobsRuntime, Depends(get_runtime)]


async def require_admin(
    runtime: RuntimeDep, authorization: Annotated[str | None, Header()] = None
) -> None:
    tokens = runtime.settings.admin_tokens
    if not tokens:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "job routes disabled: set JOBS_ADMIN_TOKEN")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not matches_any(given, tokens):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a valid bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )


router = APIRouter(tags=["jobs"])
admin = APIRouter(prefix="/jobs", tags=["jobs"], dependencies=[Depends(require_admin)])


class Events(BaseModel):
    count: int = Field(default=1, ge=1, le=10_000)


@router.post("/events", status_code=status.HTTP_202_ACCEPTED)
async def count_events(events: Events, runtime: RuntimeDep) -> dict[str, int]:
    """Count events; the ``rollup_events`` job adds them to the total at its next tick."""
    await add_events(runtime.ledger, events.count)
    return {"accepted": events.count}


def _job(name: str) -> Job:
    job = REGISTRY.get(name)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job named {name!r}")
    return job


def _run_json(run: RunRecord | None) -> dict[str, Any] | None:
    return run.to_json() if run is not None else None


@admin.get("")
async def list_jobs(runtime: RuntimeDep) -> dict[str, Any]:
    return {
        "jobs": [
            {
                "name": job.name,
                "description": job.description,
                "interval_seconds": runtime.interval(job),
                "last_run": _run_json(await runtime.ledger.last_run(job.name)),
            }
            for job in REGISTRY.values()
        ],
        "events_total": await events_total(runtime.ledger),
    }


@admin.get("/{name}")
async def job_status(name: JobName, runtime: RuntimeDep) -> dict[str, Any]:
    job = _job(name)
    return {"name": job.name, "last_run": _run_json(await runtime.ledger.last_run(job.name))}


class RunRequest(BaseModel):
    # A tick to (re)run, ISO 8601; unset: a manual run with an idempotency key of its own.
    scheduled_for: datetime | None = None


@admin.post("/{name}/run")
async def run_job(
    name: JobName, runtime: RuntimeDep, body: RunRequest | None = None
) -> dict[str, Any]:
    job = _job(name)
    now = datetime.now(UTC)
    if body is not None and body.scheduled_for is not None:
        tick = body.scheduled_for
        tick = tick.replace(tzinfo=UTC) if tick.tzinfo is None else tick.astimezone(UTC)
        result = await runtime.runner.run(job, tick)
    else:
        key = f"{job.name}@manual-{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        result = await runtime.runner.run(job, now, key=key)
    if result.outcome is Outcome.BUSY:
        raise HTTPException(status.HTTP_409_CONFLICT, "the job is running on another replica")
    if result.outcome is Outcome.UNAVAILABLE:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "lock backend unavailable",
            headers={"Retry-After": "1"},
        )
    return {
        "outcome": str(result.outcome),
        "idempotency_key": result.idempotency_key,
        "run": _run_json(result.record),
    }
