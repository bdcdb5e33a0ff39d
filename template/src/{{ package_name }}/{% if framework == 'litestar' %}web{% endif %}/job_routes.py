"""Scheduled jobs over HTTP: count events for the example job, read job status, run a job now.

``/jobs`` routes need ``Authorization: Bearer <JOBS_ADMIN_TOKEN>``; without the variable they
answer 403 (disabled). A run started here takes the job's lock like any scheduled run; it gets an
idempotency key of its own unless ``scheduled_for`` names a tick (re-running a tick that
succeeded is then refused as already done).
"""

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Router, get, post, status_codes
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ServiceUnavailableException,
)
from litestar.handlers import BaseRouteHandler
from litestar.params import JSONBody, PathParameter
from pydantic import BaseModel, Field

from ..jobs.ledger import RunRecord
from ..jobs.registry import REGISTRY, Job
from ..jobs.runner import Outcome
from ..jobs.runtime import JobsRuntime
from ..jobs.scheduled.rollup_events import add_events, events_total
from ..security.keys import matches_any

JobName = Annotated[str, PathParameter(pattern=r"^[a-z0-9_]{1,64}$")]


# Async, like every provider that does no blocking work: no worker-thread hop per request.
async def provide_runtime(state: State) -> JobsRuntime:
    runtime: JobsRuntime = state.jobs
    return runtime


RuntimeDep = NamedDependency[JobsRuntime]


async def require_admin(
    connection: ASGIConnection[Any, Any, Any, State], _handler: BaseRouteHandler
) -> None:
    """Guard: the admin bearer token, or 403 while no token is configured."""
    runtime: JobsRuntime = connection.app.state.jobs
    tokens = runtime.settings.admin_tokens
    if not tokens:
        raise PermissionDeniedException("job routes disabled: set JOBS_ADMIN_TOKEN")
    scheme, _, given = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not matches_any(given, tokens):
        raise NotAuthorizedException(
            "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )


class Events(BaseModel):
    count: int = Field(default=1, ge=1, le=10_000)


@post("/events", status_code=status_codes.HTTP_202_ACCEPTED)
async def count_events(data: JSONBody[Events], runtime: RuntimeDep) -> dict[str, int]:
    """Count events; the ``rollup_events`` job adds them to the total at its next tick."""
    await add_events(runtime.ledger, data.count)
    return {"accepted": data.count}


def _job(name: str) -> Job:
    job = REGISTRY.get(name)
    if job is None:
        raise NotFoundException(f"no job named {name!r}")
    return job


def _run_json(run: RunRecord | None) -> dict[str, Any] | None:
    return run.to_json() if run is not None else None


@get("")
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


@get("/{name:str}")
async def job_status(name: JobName, runtime: RuntimeDep) -> dict[str, Any]:
    job = _job(name)
    return {"name": job.name, "last_run": _run_json(await runtime.ledger.last_run(job.name))}


class RunRequest(BaseModel):
    # A tick to (re)run, ISO 8601; unset: a manual run with an idempotency key of its own.
    scheduled_for: datetime | None = None


@post("/{name:str}/run", status_code=status_codes.HTTP_200_OK)
async def run_job(
    name: JobName, runtime: RuntimeDep, data: JSONBody[RunRequest | None] = None
) -> dict[str, Any]:
    job = _job(name)
    now = datetime.now(UTC)
    if data is not None and data.scheduled_for is not None:
        tick = data.scheduled_for
        tick = tick.replace(tzinfo=UTC) if tick.tzinfo is None else tick.astimezone(UTC)
        result = await runtime.runner.run(job, tick)
    else:
        key = f"{job.name}@manual-{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        result = await runtime.runner.run(job, now, key=key)
    if result.outcome is Outcome.BUSY:
        raise HTTPException(
            "the job is running on another replica", status_code=status_codes.HTTP_409_CONFLICT
        )
    if result.outcome is Outcome.UNAVAILABLE:
        raise ServiceUnavailableException("lock backend unavailable", headers={"Retry-After": "1"})
    return {
        "outcome": str(result.outcome),
        "idempotency_key": result.idempotency_key,
        "run": _run_json(result.record),
    }


RUNTIME = {"runtime": Provide(provide_runtime)}
router = Router(path="/", route_handlers=[count_events], dependencies=RUNTIME, tags=["jobs"])
admin = Router(
    path="/jobs",
    route_handlers=[list_jobs, job_status, run_job],
    dependencies=RUNTIME,
    guards=[require_admin],
    tags=["jobs"],
)
