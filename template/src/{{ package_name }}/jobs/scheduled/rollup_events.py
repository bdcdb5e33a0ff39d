"""The example job: roll up the events the service counted since the last tick.

``POST /events`` (web/job_routes.py) only increments a counter that never decreases. Every tick
this job reads the counter and writes it once under the tick's idempotency key with
``ledger.write_once``; a rollup's events are the difference between two consecutive written
values. The total therefore grows by what was counted, once, whichever replica runs the tick and
however often it is started. Replace it with the service's own jobs; keep the pattern: the
effect is one ``write_once`` keyed by the tick and fenced by the lock's token.
"""

from dataclasses import dataclass

from ..ledger import JobLedger
from ..registry import JobContext, register

ROLLUP_EVENTS = "rollup_events"
EVENTS_COUNTER = "events"


@dataclass(frozen=True)
class Rollup:
    """One tick's rollup: the events it added to the total."""

    idempotency_key: str
    events: int
    fencing_token: int


async def add_events(ledger: JobLedger, count: int) -> None:
    """Count events for the next rollup (the input of ``POST /events``)."""
    await ledger.add_to_counter(EVENTS_COUNTER, count)


async def rollups(ledger: JobLedger, job: str = ROLLUP_EVENTS) -> list[Rollup]:
    """The job's rollups in the order they were written, each the events since the previous."""
    found, previous = [], 0
    for entry in await ledger.written(job):
        found.append(Rollup(entry.idempotency_key, entry.value - previous, entry.fencing_token))
        previous = entry.value
    return found


async def events_total(ledger: JobLedger, job: str = ROLLUP_EVENTS) -> int:
    """Events rolled up so far: the newest value the job wrote (they are cumulative)."""
    newest = await ledger.newest(job)
    return newest.value if newest else 0


@register(
    ROLLUP_EVENTS, interval_seconds=60, description="roll up the events counted since the last tick"
)
async def rollup_events(ctx: JobContext) -> dict[str, object]:
    """Write the event counter once for this tick; report the events it added to the total."""
    previous = await ctx.ledger.newest(ctx.job)
    counted = await ctx.ledger.read_counter(EVENTS_COUNTER)
    ctx.checkpoint()  # the last safe point before the effect
    if not await ctx.ledger.write_once(ctx.job, ctx.idempotency_key, ctx.fencing_token, counted):
        return {"applied": False, "reason": "this tick was already rolled up"}
    # Two reads, never the whole history: the tick's cost stays the same as the ledger grows.
    return {"applied": True, "events": counted - (previous.value if previous else 0)}
