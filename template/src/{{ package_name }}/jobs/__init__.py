"""Scheduled jobs that run once per tick however many replicas run.

- ``registry``: the jobs (``@register``), their discovery, the context a job gets, tick names.
- ``scheduled``: the jobs themselves, one module per job, all imported by discovery; the example
  ``rollup_events`` has a real, checkable effect.
- ``runner``: one tick of one job under the job's lock, with an idempotency key per tick.
- ``ledger``: run records, ``write_once`` for effects and counters, one module per backend.
- ``settings``: ``LOCK_*`` and ``JOBS_*`` variables; ``runtime``: builds all of it.
- Schedulers (one per answer): ``inprocess`` (APScheduler in every replica), ``celery_app``
  (Celery worker + beat with RedBeat), or none here with a Kubernetes CronJob running
  ``python -m <package> run-job NAME``.
"""
