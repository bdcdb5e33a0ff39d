"""Django in a process that runs jobs outside the web service: ``run-job`` (what a CronJob
starts) and the Celery worker.

The core calls ``configure`` before the first job runs (``jobs/runtime.py``:
``prepare_job_process``), with the settings the command has checked: Django gets the same
``DATABASES`` as in the web process (``db.service_databases``: ``DATABASE_URL`` and the ``DB_*``
settings, the capped pool, the statement timeout) and the same applications, through the same
``db.configure`` that ``create_app`` calls, so a job reads and writes models like a view does::

    from ...web.notes.models import Note  # in jobs/scheduled/, inside the job function

    count = await Note.objects.acount()

Its connections are named ``<service>-jobs`` in ``pg_stat_activity``. After every run (in the
web process too: the in-process scheduler), ``after_run`` does what the end of a request does:
the run's connections go back to the pool, so a long-lived process (a Celery worker) neither
holds one between runs nor reuses one a database restart broke.
"""

from asgiref.sync import sync_to_async
from django import conf
from django.db import close_old_connections

from ..config import Settings
from ..db.settings import DatabaseSettings
from . import admin_site, db


def configure(settings: Settings) -> None:
    """Configure Django for jobs in this process, as ``create_app`` does for requests."""
    database = DatabaseSettings.load(settings)
    admin = admin_site.AdminSiteSettings.load(settings)
    db.configure(
        settings,
        db.service_databases(database, f"{settings.service_name}-jobs"),
        admin if admin.enabled(settings) else None,
    )


async def after_run() -> None:
    """After a job's run: give back its connections, as Django does after each request."""
    if conf.settings.configured:  # a test's process that runs jobs without Django
        # Thread-sensitive, like the ORM's async calls: the thread that holds the connections.
        await sync_to_async(close_old_connections)()
