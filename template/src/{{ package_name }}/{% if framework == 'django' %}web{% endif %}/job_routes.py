"""Scheduled jobs over HTTP: count events for the example job, read job status, run a job now.

``/jobs`` routes need ``Authorization: Bearer <JOBS_ADMIN_TOKEN>``; without the variable they
answer 403 (disabled). A run started here takes the job's lock like any scheduled run; it gets an
idempotency key of its own unless ``scheduled_for`` names a tick (re-running a tick that
succeeded is then refused as already done).
"""

import uuid
from datetime import UTC, datetime
from functools import wraps
from typing import Annotated, Any, cast

from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from pydantic import BaseModel, Field

from ..jobs.ledger import RunRecord
from ..jobs.registry import REGISTRY, Job
from ..jobs.runner import Outcome
from ..jobs.runtime import JobsRuntime
from ..jobs.scheduled.rollup_events import add_events, events_total
from ..locks import LockUnavailable
from ..observability.logs import get_logger
from ..security.keys import matches_any
from . import api_docs
from .dependencies import View, service
from .errors import HttpError, handles, json_error, json_response
from .routing import endpoint
from .validation import json_body, parse

logger = get_logger(__name__)

JobName = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,64}$")]


@handles(LockUnavailable)
def lock_backend_unavailable(exc: LockUnavailable) -> HttpResponse:
    logger.warning("lock backend unavailable", error=str(exc))
    return json_error("lock backend unavailable", 503, {"Retry-After": "1"})


def runtime(request: HttpRequest) -> JobsRuntime:
    return cast(JobsRuntime, service(request, "jobs"))


def admin_only(view: View) -> View:
    """View decorator: the admin token in ``Authorization: Bearer``, or 403/401."""

    @wraps(view)
    async def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        tokens = runtime(request).settings.admin_tokens
        if not tokens:
            raise HttpError(403, "job routes disabled: set JOBS_ADMIN_TOKEN")
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not matches_any(given, tokens):
            raise HttpError(401, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"})
        return await view(request, *args, **kwargs)

    return guarded


class Events(BaseModel):
    count: int = Field(default=1, ge=1, le=10_000)


@api_docs.operation(body=Events, status=202)
async def count_events(request: HttpRequest) -> HttpResponse:
    """Count events; the ``rollup_events`` job adds them to the total at its next tick."""
    events: Events = await json_body(request, Events)
    await add_events(runtime(request).ledger, events.count)
    return json_response({"accepted": events.count}, 202)


def _job(name: str) -> Job:
    name = parse(JobName, name, "path", "name")
    job = REGISTRY.get(name)
    if job is None:
        raise HttpError(404, f"no job named {name!r}")
    return job


def _run_json(run: RunRecord | None) -> dict[str, Any] | None:
    return run.to_json() if run is not None else None


@admin_only
async def list_jobs(request: HttpRequest) -> HttpResponse:
    jobs = runtime(request)
    return json_response(
        {
            "jobs": [
                {
                    "name": job.name,
                    "description": job.description,
                    "interval_seconds": jobs.interval(job),
                    "last_run": _run_json(await jobs.ledger.last_run(job.name)),
                }
                for job in REGISTRY.values()
            ],
            "events_total": await events_total(jobs.ledger),
        }
    )


@admin_only
async def job_status(request: HttpRequest, name: str) -> HttpResponse:
    job = _job(name)
    last_run = await runtime(request).ledger.last_run(job.name)
    return json_response({"name": job.name, "last_run": _run_json(last_run)})


class RunRequest(BaseModel):
    # A tick to (re)run, ISO 8601; unset: a manual run with an idempotency key of its own.
    scheduled_for: datetime | None = None


@api_docs.operation(body=RunRequest)
@admin_only
async def run_job(request: HttpRequest, name: str) -> HttpResponse:
    job = _job(name)
    body: RunRequest | None = await json_body(request, RunRequest, required=False)
    jobs = runtime(request)
    now = datetime.now(UTC)
    if body is not None and body.scheduled_for is not None:
        tick = body.scheduled_for
        tick = tick.replace(tzinfo=UTC) if tick.tzinfo is None else tick.astimezone(UTC)
        result = await jobs.runner.run(job, tick)
    else:
        key = f"{job.name}@manual-{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        result = await jobs.runner.run(job, now, key=key)
    if result.outcome is Outcome.BUSY:
        raise HttpError(409, "the job is running on another replica")
    if result.outcome is Outcome.UNAVAILABLE:
        raise HttpError(503, "lock backend unavailable", {"Retry-After": "1"})
    return json_response(
        {
            "outcome": str(result.outcome),
            "idempotency_key": result.idempotency_key,
            "run": _run_json(result.record),
        }
    )


urlpatterns = [
    endpoint("events", name="events", post=count_events),
    endpoint("jobs", name="jobs", get=list_jobs),
    endpoint("jobs/<str:name>", name="job", get=job_status),
    endpoint("jobs/<str:name>/run", name="job-run", post=run_job),
]
