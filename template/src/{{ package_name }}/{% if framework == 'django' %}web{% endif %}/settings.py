"""Django's settings, taken from the service's own typed settings (``config.Settings``).

There is no second configuration system: nothing here reads the environment. Django keeps one
settings object per process (``django.conf.settings``), while the service builds its settings per
application (``create_app(settings)``), so this module sets only what Django itself needs, once
per process, from the first application's settings; everything that can differ between two
applications (cookies, limits, keys, trusted origins) stays with the core, which reads
``config.Settings`` on every request. (Django's CSRF check takes the first application's
trusted origins and cookie policy: a service process builds one application.)
docs/service/django.md has the table of what is set and which variable feeds it.
"""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import django
from django import conf
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, reset_queries

from ..config import Settings

PACKAGE = __name__.rpartition(".")[0]
# Django's own default: what cache.set() without a timeout keeps an entry for.
DEFAULT_CACHE_TIMEOUT_SECONDS = 300


def django_configuration(
    settings: Settings,
    databases: Mapping[str, Any] | None = None,
    installed_apps: Sequence[str] = (),
    middleware: Sequence[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The Django settings of a service configured by ``settings``; with a database, its
    ``DATABASES``, applications, users' middleware and settings (``extra``) come from ``db.py``
    (built from the ``DB_*`` settings)."""
    keys = settings.signing_keys.for_purpose("django")
    return {
        # Never Django's debug pages: errors are logged by the service and answered plainly.
        "DEBUG": False,
        # Derived from SECRET_KEY (and SECRET_KEY_FALLBACKS) for Django's own signing only.
        "SECRET_KEY": keys[0].hex(),
        "SECRET_KEY_FALLBACKS": [key.hex() for key in keys[1:]],
        # Which hosts reach the service is the Ingress's and the balancer's decision.
        "ALLOWED_HOSTS": ["*"],
        "ROOT_URLCONF": f"{PACKAGE}.urls",
        # Sessions are the core's (request.session is backed by it), not Django's middleware.
        # CSRF: Django's token and origin check for form views, the core's origin check for
        # the JSON API (csrf.py).
        "MIDDLEWARE": [
            f"{PACKAGE}.sessions.session_middleware",
            *middleware,
            f"{PACKAGE}.csrf.CsrfViewMiddleware",
        ],
        "CSRF_TRUSTED_ORIGINS": sorted(settings.trusted_origins),
        "CSRF_COOKIE_SECURE": settings.cookie_secure,
        "CSRF_COOKIE_SAMESITE": settings.session_cookie_samesite.capitalize(),
        "CSRF_FAILURE_VIEW": f"{PACKAGE}.csrf.failure",
        "INSTALLED_APPS": list(installed_apps),
        "DATABASES": dict(databases or {}),
        "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
        "USE_TZ": True,
        "TIME_ZONE": "UTC",
        "USE_I18N": False,
        "APPEND_SLASH": False,
        # The core's request limits (MAX_REQUEST_BODY_BYTES, STORAGE_MAX_UPLOAD_BYTES) bound
        # every body before Django reads it.
        "DATA_UPLOAD_MAX_MEMORY_SIZE": None,
        # The core configures logging (LOG_LEVEL, JSON lines); Django's loggers go through it.
        "LOGGING_CONFIG": None,
        # default_storage and FileField: the core's object storage (STORAGE_*), streamed; the
        # admin's static files add a "staticfiles" storage (admin_site.py).
        "STORAGES": {
            "default": {"BACKEND": f"{PACKAGE}.file_storage.ServiceStorage"},
            **(extra or {}).get("STORAGES", {}),
        },
        # django.core.cache.cache: the shared store (STORE_URL) under KEY_NAMESPACE, JSON values.
        "CACHES": {
            "default": {
                "BACKEND": f"{PACKAGE}.django_cache.SharedStoreCache",
                "TIMEOUT": DEFAULT_CACHE_TIMEOUT_SECONDS,
            }
        },
        **{name: value for name, value in (extra or {}).items() if name != "STORAGES"},
    }


def configure(
    settings: Settings,
    *,
    databases: Mapping[str, Any] | None = None,
    installed_apps: Sequence[str] = (),
    middleware: Sequence[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Configure Django for this process, once: later calls change nothing."""
    # Django's lazy settings object, reached through its module: a module-level reference to it
    # would be configured (or fail) the moment anything inspects this module's names.
    if conf.settings.configured:
        return
    conf.settings.configure(
        **django_configuration(settings, databases, installed_apps, middleware, extra)
    )
    django.setup(set_prefix=False)
    # Django logs every 4xx answer as a warning ("Not Found: /x"); the access log already has one
    # line per request. Server errors are still logged.
    logging.getLogger("django.request").setLevel(logging.ERROR)
    if databases is None:
        # Without a database layer these do nothing, yet cost two thread hops per request.
        request_started.disconnect(close_old_connections)
        request_started.disconnect(reset_queries)
        request_finished.disconnect(close_old_connections)
