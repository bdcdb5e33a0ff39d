"""The service's scheduled jobs: one module per job, each registering itself with ``@register``.

Every module of this package is imported by ``registry.discover_jobs()``, so adding a job is
adding a module here: no import to add elsewhere, and no ledger backend to change (a job's
exactly-once effect goes through the ledger's generic ``write_once``).
"""
