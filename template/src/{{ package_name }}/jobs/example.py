"""The example job: roll up the events the service counted since the last tick.

``POST /events`` (web/job_routes.py) counts events; every tick this job moves the pending count
into a rollup recorded under the tick's idempotency key, so the total only grows by what was
counted, once, whichever replica runs the tick and however often it is started. Replace it with
the service's own jobs; keep the pattern: effect and idempotency key in one atomic write.
"""

from .registry import JobContext, register

ROLLUP_EVENTS = "rollup_events"


@register(
    ROLLUP_EVENTS, interval_seconds=60, description="roll up the events counted since the last tick"
)
async def rollup_events(ctx: JobContext) -> dict[str, object]:
    ctx.checkpoint()  # the last safe point before the effect
    rollup = await ctx.ledger.rollup_events(ctx.job, ctx.idempotency_key, ctx.fencing_token)
    if rollup is None:
        return {"applied": False, "reason": "this tick was already rolled up"}
    return {"applied": True, "events": rollup.events}
