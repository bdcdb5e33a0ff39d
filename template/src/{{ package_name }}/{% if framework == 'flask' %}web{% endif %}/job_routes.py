"""Scheduled jobs over HTTP: count events for the example job, read job status, run a job now.

``/jobs`` routes need ``Authorization: Bearer <JOBS_ADMIN_TOKEN>``; without the variable they
answer 403 (disabled). A run started here takes the job's lock like any scheduled run; it gets an
idempotency key of its own unless ``scheduled_for`` names a tick (re-running a tick that
succeeded is then refused as already done).
"""

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, cast

from flask import Blueprint, Flask, current_app, request
from pydantic import BaseModel, Field
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Conflict, Forbidden, NotFound, ServiceUnavailable, Unauthorized

from ..jobs.ledger import RunRecord
from ..jobs.registry import REGISTRY, Job
from ..jobs.runner import Outcome
from ..jobs.runtime import JobsRuntime
from ..jobs.scheduled.rollup_events import add_events, events_total
from ..security.keys import matches_any
from . import api_docs, portal
from .validation import json_body, parse

JobName = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,64}$")]

blueprint = Blueprint("jobs", __name__)
# Nested, so its routes share the "jobs" tag; its guard applies to them only.
admin = Blueprint("admin", __name__, url_prefix="/jobs")
blueprint.register_blueprint(admin)


def install(app: Flask, runtime: JobsRuntime) -> None:
    app.extensions["jobs"] = runtime
    app.register_blueprint(blueprint)


def runtime() -> JobsRuntime:
    return cast(JobsRuntime, current_app.extensions["jobs"])


@admin.before_request
def require_admin() -> None:
    tokens = runtime().settings.admin_tokens
    if not tokens:
        raise Forbidden("job routes disabled: set JOBS_ADMIN_TOKEN")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not matches_any(given, tokens):
        raise Unauthorized(
            "a valid bearer token is required", www_authenticate=WWWAuthenticate("Bearer")
        )


class Events(BaseModel):
    count: int = Field(default=1, ge=1, le=10_000)


@blueprint.post("/events")
@api_docs.operation(body=Events, status=202)
def count_events() -> tuple[dict[str, int], int]:
    """Count events; the ``rollup_events`` job adds them to the total at its next tick."""
    events: Events = json_body(Events)
    portal.run(add_events(runtime().ledger, events.count))
    return {"accepted": events.count}, 202


def _job(name: str) -> Job:
    name = parse(JobName, name, "path", "name")
    job = REGISTRY.get(name)
    if job is None:
        raise NotFound(f"no job named {name!r}")
    return job


def _run_json(run: RunRecord | None) -> dict[str, Any] | None:
    return run.to_json() if run is not None else None


@admin.get("")
def list_jobs() -> dict[str, Any]:
    jobs = runtime()

    async def listing() -> dict[str, Any]:
        return {
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

    return portal.run(listing())


@admin.get("/<name>")
def job_status(name: str) -> dict[str, Any]:
    job = _job(name)
    last_run = portal.run(runtime().ledger.last_run(job.name))
    return {"name": job.name, "last_run": _run_json(last_run)}


class RunRequest(BaseModel):
    # A tick to (re)run, ISO 8601; unset: a manual run with an idempotency key of its own.
    scheduled_for: datetime | None = None


@admin.post("/<name>/run")
@api_docs.operation(body=RunRequest)
def run_job(name: str) -> dict[str, Any]:
    job = _job(name)
    body: RunRequest | None = json_body(RunRequest, required=False)
    jobs = runtime()
    now = datetime.now(UTC)
    if body is not None and body.scheduled_for is not None:
        tick = body.scheduled_for
        tick = tick.replace(tzinfo=UTC) if tick.tzinfo is None else tick.astimezone(UTC)
        result = portal.run(jobs.runner.run(job, tick))
    else:
        key = f"{job.name}@manual-{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        result = portal.run(jobs.runner.run(job, now, key=key))
    if result.outcome is Outcome.BUSY:
        raise Conflict("the job is running on another replica")
    if result.outcome is Outcome.UNAVAILABLE:
        raise ServiceUnavailable("lock backend unavailable", retry_after=1)
    return {
        "outcome": str(result.outcome),
        "idempotency_key": result.idempotency_key,
        "run": _run_json(result.record),
    }
