"""Scheduled jobs that run once per tick however many replicas run.

- ``registry``: the jobs (``@register``), the context a job gets, tick names (UTC).
- ``example``: ``rollup_events``, a job with a real, checkable effect.
- ``runner``: one tick of one job under the job's lock, with an idempotency key per tick.
- ``ledger``: run records (last-run status) and the example job's data, one module per backend.
- ``settings``: ``LOCK_*`` and ``JOBS_*`` variables; ``runtime``: builds all of it.
- Schedulers (one per answer): ``inprocess`` (APScheduler in every replica), ``celery_app``
  (Celery worker + beat with RedBeat), or none here with a Kubernetes CronJob running
  ``python -m <package> run-job NAME``.
"""
