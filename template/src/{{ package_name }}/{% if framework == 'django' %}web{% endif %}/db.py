"""Django's ORM on PostgreSQL, configured from the core's typed ``DatabaseSettings``.

``DATABASES["default"]`` is built here from ``DATABASE_URL`` and the ``DB_*`` settings (no second
configuration system): Django's PostgreSQL backend on psycopg 3 with Django's connection pool
(``OPTIONS["pool"]``), so one process never holds more than ``DB_POOL_SIZE + DB_MAX_OVERFLOW``
connections, whatever the load. A request takes a pooled connection on its first query and gives
it back when it ends (``CONN_MAX_AGE`` 0: the pool, not the request thread, keeps connections).
The readiness check runs ``SELECT 1`` through that same pool; errors of the database answer 503.

``python -m <package> migrate`` runs Django's migrations here (``migrate``), under the core's
migration lock; it and ``manage`` configure Django with no pool: a one-shot process needs one
connection. Both install the admin's applications (``admin_site.py``) whatever
``DJANGO_ADMIN_ENABLED`` says, so its table exists before the admin is turned on; a serving
process installs them only while the admin is on.
"""

import asyncio
import copy
import math
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from asgiref.local import Local
from asgiref.sync import sync_to_async
from django import conf
from django.core.management import call_command, execute_from_command_line
from django.db import connections
from django.db.backends.postgresql.base import DatabaseWrapper as PostgresWrapper
from django.db.migrations.recorder import MigrationRecorder
from django.db.utils import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse

from ..config import Settings
from ..db.connect import NOT_CONFIGURED, DatabaseNotConfigured, check_reachable
from ..db.migration_lock import MigrationResult, migration_lock
from ..db.settings import DatabaseSettings
from ..observability.logs import get_logger
from . import admin_site
from . import settings as django_settings
from .dependencies import service
from .errors import HttpError, handles, json_error

logger = get_logger(__name__)

WEB = __name__.rpartition(".")[0]
# The Django applications of the service: each with its models and migrations. Users are
# Django's (``django.contrib.auth``, whose permissions need ``contenttypes``): accounts.py.
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", f"{WEB}.notes"]
# After the session middleware: ``request.auser()`` for every request.
MIDDLEWARE = [f"{WEB}.accounts.authentication_middleware"]
USERS = {
    # The demo account first (it answers for DEMO_USERNAME only), then the user table.
    "AUTHENTICATION_BACKENDS": [
        f"{WEB}.accounts.DemoAccountBackend",
        "django.contrib.auth.backends.ModelBackend",
    ],
    # Django's project template's checks of a new password (createsuperuser, changepassword).
    "AUTH_PASSWORD_VALIDATORS": [
        {"NAME": f"django.contrib.auth.password_validation.{name}"}
        for name in (
            "UserAttributeSimilarityValidator",
            "MinimumLengthValidator",
            "CommonPasswordValidator",
            "NumericPasswordValidator",
        )
    ],
}


def connection_settings(database: DatabaseSettings) -> dict[str, Any]:
    """``DATABASE_URL`` as Django spells a database: host, port, name, user, password; the URL's
    query parameters go to the driver, ``ssl`` (asyncpg's, which the core's connections read
    from the same URL) as libpq's ``sslmode``."""
    url = urlsplit(database.url())
    options = dict(parse_qsl(url.query))
    if "ssl" in options:
        options["sslmode"] = options.pop("ssl")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(url.path.lstrip("/")),
        "USER": unquote(url.username or ""),
        "PASSWORD": unquote(url.password or ""),
        "HOST": url.hostname or "",
        "PORT": str(url.port or ""),
        "OPTIONS": options,
    }


def service_databases(database: DatabaseSettings, application_name: str) -> dict[str, Any]:
    """``DATABASES`` of the service: the capped pool of this process."""
    if not database.configured:
        return {}
    default = connection_settings(database)
    default["OPTIONS"].update(
        {
            # libpq takes whole seconds.
            "connect_timeout": max(1, math.ceil(database.db_connect_timeout_seconds)),
            "application_name": application_name[:63],
            "options": f"-c statement_timeout={database.db_statement_timeout_ms}",
            "pool": {
                "min_size": database.db_pool_size,
                "max_size": database.max_connections,
                # A request that finds no free connection this long fails (503), never opens one.
                "timeout": database.db_pool_timeout_seconds,
            },
        }
    )
    # Pooled connections go back to the pool at the end of each request; each is checked before
    # use, so after a database restart stale connections are replaced, not handed out.
    return {"default": {**default, "CONN_MAX_AGE": 0, "CONN_HEALTH_CHECKS": True}}


def command_databases(database: DatabaseSettings, application_name: str) -> dict[str, Any]:
    """``DATABASES`` of a one-shot command (``migrate``, ``manage``), its connections named
    ``application_name``: one connection, no pool, DDL waiting at most
    ``DB_MIGRATION_LOCK_TIMEOUT_MS`` for a table lock."""
    default = connection_settings(database)
    default["OPTIONS"].update(
        {
            "connect_timeout": max(1, math.ceil(database.db_connect_timeout_seconds)),
            "application_name": application_name[:63],
            "options": f"-c lock_timeout={database.db_migration_lock_timeout_ms}",
        }
    )
    return {"default": default}


def configure(
    settings: Settings,
    databases: dict[str, Any],
    admin: admin_site.AdminSiteSettings | None = None,
) -> None:
    """Configure Django for this process with ``databases`` and the service's applications, and
    the admin's when ``admin`` is given.

    Django keeps one ``DATABASES`` per process. The service builds one application per process;
    a process that builds several (the tests) gets the newest application's databases: the
    previous ones' connections and pools are closed first.
    """
    global _databases
    if conf.settings.configured and databases != _databases:
        _use_databases(databases)
    installed_apps, middleware, extra = INSTALLED_APPS, MIDDLEWARE, USERS
    if admin is not None:
        installed_apps = [*INSTALLED_APPS, *admin_site.INSTALLED_APPS]
        middleware = [*MIDDLEWARE, *admin_site.MIDDLEWARE]
        extra = {**USERS, **admin.django_settings()}
    django_settings.configure(
        settings,
        databases=copy.deepcopy(databases),
        installed_apps=installed_apps,
        middleware=middleware,
        extra=extra,
    )
    _databases = copy.deepcopy(databases)


# The databases Django was last configured with (it adds its defaults to its own copy).
_databases: dict[str, Any] | None = None


def _use_databases(databases: dict[str, Any]) -> None:
    for alias in connections:
        connection = connections[alias]
        connection.close()
        if isinstance(connection, PostgresWrapper):
            connection.close_pool()
    conf.settings.DATABASES = copy.deepcopy(databases)
    # Django's connection handler reads DATABASES once and keeps a connection object per
    # thread: both start afresh, as in a new process.
    handler = cast(Any, connections)
    handler.settings = connections.configure_settings(copy.deepcopy(databases))
    handler._connections = Local(handler.thread_critical)


class DjangoDatabase:
    """The ORM's database as the service sees it: configured or not, reachable or not."""

    def __init__(self, settings: DatabaseSettings, application_name: str) -> None:
        self.settings = settings
        self.application_name = application_name

    @property
    def configured(self) -> bool:
        return self.settings.configured

    async def connect(self) -> None:
        """At start: wait until the database answers (bounded retries); nothing if unconfigured.

        A transient error (refused, server starting) is retried with backoff, a wrong password
        fails at once: the core's check, on a connection of its own closed before serving (plain
        asyncpg: a Django process never imports SQLAlchemy).
        """
        if self.configured:
            await check_reachable(self.settings, self.application_name)

    async def ping(self) -> None:
        """The readiness check: ``SELECT 1`` on a connection of the pool the views use."""
        if not self.configured:
            raise DatabaseNotConfigured(NOT_CONFIGURED)
        await sync_to_async(_select_one, thread_sensitive=False)()

    async def close(self) -> None:
        """Close the pool (at shutdown)."""
        if self.configured:
            await asyncio.to_thread(_close_pool)


def _select_one() -> None:
    connection = connections["default"]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()  # back to the pool


def _close_pool() -> None:
    connection = cast(PostgresWrapper, connections["default"])
    connection.close()
    connection.close_pool()


def database(request: HttpRequest) -> DjangoDatabase:
    """The application's database (``app.state.database``)."""
    found: DjangoDatabase = service(request, "database")
    return found


def require_database(request: HttpRequest) -> None:
    """503 ``database not configured`` when DATABASE_URL is unset (development only)."""
    if not database(request).configured:
        raise HttpError(503, NOT_CONFIGURED)


@handles(OperationalError, InterfaceError)
def database_unavailable(exc: Exception) -> HttpResponse:
    # Unreachable, no free pooled connection in time, or a statement timeout: retry later.
    reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    logger.warning("database unavailable", error=reason)
    return json_error("database unavailable", 503, {"Retry-After": "1"})


async def migrate(
    settings: Settings, database: DatabaseSettings, targets: tuple[str, ...] = ()
) -> MigrationResult:
    """Django's ``migrate`` (to ``targets``: ``[app_label [migration]]``, every application's
    newest by default) while holding the core's migration lock.

    Its connection has ``lock_timeout`` set (``DB_MIGRATION_LOCK_TIMEOUT_MS``), so a schema change
    that cannot get its table lock quickly fails instead of queueing the running service.
    """
    admin = admin_site.AdminSiteSettings.load(settings)
    configure(settings, command_databases(database, f"{settings.service_name}-migrate"), admin)
    async with migration_lock(database, settings.service_name) as waited:
        before, after = await asyncio.to_thread(_run_migrate, targets)
    return MigrationResult(before, after, waited)


def _applied() -> tuple[str, ...]:
    recorder = MigrationRecorder(connections["default"])
    return tuple(sorted(f"{app}.{name}" for app, name in recorder.applied_migrations()))


def _run_migrate(targets: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    try:
        before = _applied()
        # The service logs JSON: Django's own progress lines stay off stdout.
        call_command("migrate", *targets, interactive=False, verbosity=0)
        return before, _applied()
    finally:
        connections["default"].close()


def manage(settings: Settings, argv: list[str]) -> int:
    """Django's command line (``manage.py``): ``argv`` is the program and its arguments."""
    database = DatabaseSettings.load(settings)
    name = f"{settings.service_name}-manage"
    databases = command_databases(database, name) if database.configured else {}
    configure(settings, databases, admin_site.AdminSiteSettings.load(settings))
    try:
        execute_from_command_line(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0
