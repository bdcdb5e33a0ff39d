"""Django's admin site (``django.contrib.admin``) at ``/admin/`` on the public port.

``DJANGO_ADMIN_ENABLED``: unset, on in development and off in production; off, ``/admin/`` is
not a URL (404) and none of the admin's applications or middleware is installed in the serving
process. On, the serving process adds:

- the admin, Django's messages framework (stored in the core's session) and its static files
  (``django.contrib.staticfiles``), with ``TEMPLATES`` (the app directories loader);
- ``MessageMiddleware`` (async-only, like the rest of ``MIDDLEWARE``: the messages are read and
  saved through the session only when a view used them);
- ``StaticFilesMiddleware``: WhiteNoise's Django middleware, run async-only: a request whose
  path is not a static file costs a dictionary lookup on the event loop; a static file is read
  in a worker thread (one hop, static paths only).

The admin's views are synchronous: Django runs them in a worker thread, where the session is
read through ``request.session``'s synchronous methods (``sessions.py``). Logins are Django's
(``login()``: a new session ID; ``logout()``: the record deleted); only ``is_staff`` users may
enter (``manage createsuperuser`` makes one). Its login form is counted by the service's login
throttle (``LOGIN_*``, the same counters as the JSON login): over a limit it answers 429. Forms
carry Django's CSRF token and pass the core's origin check. The probes, security headers,
request limits and access log wrap these answers like every other.

Static files: with ``DJANGO_STATIC_ROOT`` set (the image sets it and runs ``manage
collectstatic`` at build), they are served from that directory under content-hashed names
(``CompressedManifestStaticFilesStorage``: cached for good, gzip variants); unset (development),
from the installed packages (``WHITENOISE_USE_FINDERS``). A start with the admin on and a
``DJANGO_STATIC_ROOT`` that holds no collected files is refused.

The commands (``migrate``, ``manage``) always install the admin's applications, whatever
``DJANGO_ADMIN_ENABLED`` says: its table (``django_admin_log``) exists before the admin is
turned on, and ``manage collectstatic`` has files to collect.
"""

from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Self

from asgiref.sync import markcoroutinefunction, sync_to_async
from django.contrib.messages import middleware as messages_middleware
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from whitenoise.middleware import WhiteNoiseMiddleware

from ..config import EnvironmentSettings, Settings
from ..security import LoginThrottled
from . import errors
from .dependencies import login_throttle

WEB = __name__.rpartition(".")[0]
PACKAGE = WEB.rpartition(".")[0]
STATIC_URL = "/static/"
# What ``collectstatic`` writes with the manifest storage: every file's hashed name.
MANIFEST = "staticfiles.json"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]
# After the session and authentication middleware (``db.MIDDLEWARE``).
MIDDLEWARE = [
    f"{WEB}.admin_site.StaticFilesMiddleware",
    f"{WEB}.admin_site.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
# The admin's checks look for Django's own session and authentication middleware classes; the
# core's (``sessions.session_middleware``, ``accounts.authentication_middleware``) set the same
# ``request.session`` and ``request.user`` without a thread hop per request.
SILENCED_SYSTEM_CHECKS = ["admin.E408", "admin.E410"]


class AdminSiteSettings(EnvironmentSettings):
    # Django's admin site at /admin/ on the public port. Unset: on in development, off in
    # production (it is a login page for whoever finds it).
    django_admin_enabled: bool | None = None
    # Where `manage collectstatic` wrote the static files (the image: /app/.venv/static). Unset:
    # they are served from the installed packages.
    django_static_root: Path | None = None

    def enabled(self, settings: Settings) -> bool:
        if self.django_admin_enabled is None:
            return not settings.is_production
        return self.django_admin_enabled

    def serving_problems(self, settings: Settings) -> list[str]:
        """What a serving process refuses: the admin on without its collected static files."""
        root = self.django_static_root
        if not self.enabled(settings) or root is None or (root / MANIFEST).is_file():
            return []
        return [
            f"DJANGO_STATIC_ROOT={root} holds no collected static files ({MANIFEST}): run "
            f"`python -m {PACKAGE} manage collectstatic --noinput` with it set, or unset it"
        ]

    def django_settings(self) -> dict[str, Any]:
        """The settings Django needs for the admin: templates, messages, static files."""
        collected = self.django_static_root is not None
        static_storage = (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if collected
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
        return {
            "TEMPLATES": TEMPLATES,
            "SILENCED_SYSTEM_CHECKS": SILENCED_SYSTEM_CHECKS,
            # Messages live in the core's session, like the login they follow.
            "MESSAGE_STORAGE": "django.contrib.messages.storage.session.SessionStorage",
            "STATIC_URL": STATIC_URL,
            "STATIC_ROOT": str(self.django_static_root) if collected else None,
            "STORAGES": {"staticfiles": {"BACKEND": static_storage}},
            "WHITENOISE_USE_FINDERS": not collected,
            "WHITENOISE_AUTOREFRESH": False,
        }

    @classmethod
    def load(cls, settings: Settings) -> Self:
        """Read the admin's settings (ConfigError names an invalid value)."""
        return cls.from_environment()


GetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]
AsyncView = Callable[[HttpRequest], Coroutine[Any, Any, HttpResponseBase]]
# Django's own limit on a user name (AbstractUser.username).
USERNAME_MAX_LENGTH = 150


def urlpatterns() -> list[Any]:
    """``/admin/``: Django's default admin site, with every ``<app>/admin.py`` registered, its
    login behind the service's login throttle."""
    # Imported once Django is configured: the admin's modules import models.
    from django.contrib import admin
    from django.urls import path

    return [
        path("admin/login/", throttled_login(admin.site.login)),
        path("admin/", admin.site.urls),
    ]


def throttled_login(login: Callable[..., HttpResponseBase]) -> AsyncView:
    """The admin's login view (synchronous, run in a worker thread as Django would) with each
    submitted form counted first, per account and per client address, as the JSON login is:
    over a limit the answer is 429 with ``Retry-After``, whatever the password."""
    sync_login = sync_to_async(login)

    async def view(request: HttpRequest) -> HttpResponseBase:
        if request.method != "POST":
            return await sync_login(request)
        username = str(request.POST.get("username", ""))[:USERNAME_MAX_LENGTH]
        client = request.META.get("REMOTE_ADDR") or "unknown"
        try:
            attempt = await login_throttle(request).attempt(username, client)
        except LoginThrottled as exc:
            headers = {"Retry-After": str(exc.retry_after)}
            return errors.json_error("too many login attempts", 429, headers)
        except Exception as exc:
            # The shared store unreachable: its registered answer (503), as the API's.
            answer = errors.answer(exc)
            if answer is None:
                raise
            return answer
        response = await sync_login(request)
        # A login redirects; wrong credentials answer the form again.
        if response.status_code == 302:
            await attempt.succeeded()
        return response

    return view


class MessageMiddleware(messages_middleware.MessageMiddleware):
    """Django's messages middleware, async-only. Messages a view added or read are saved in the
    session after the view: it is read first (on the event loop) when the view did not."""

    sync_capable = False
    async_capable = True

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        self.process_request(request)
        response = await self.get_response(request)  # type: ignore[misc]
        storage: Any = getattr(request, "_messages", None)
        if storage is not None and (storage.used or storage.added_new):
            await request.session.aload()
        return self.process_response(request, response)


class StaticFilesMiddleware(WhiteNoiseMiddleware):  # type: ignore[misc]
    """WhiteNoise's middleware, async-only (WhiteNoise's own is synchronous, so Django would run
    every request's middleware chain through a worker thread to call it). The file table is
    built at start; a static path is answered from a worker thread, any other path goes on."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        super().__init__(get_response)
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        static_file = self.files.get(request.path_info)
        if static_file is None:
            response: HttpResponseBase = await self.get_response(request)
            return response
        return await sync_to_async(_answer, thread_sensitive=False)(static_file, request)


def _answer(static_file: Any, request: HttpRequest) -> HttpResponse:
    # WhiteNoise's answer (conditional requests, ranges, the gzip variant) with its body read
    # here: a static file is small, and a streamed file would be read by Django's ASGI handler
    # through a worker thread anyway.
    found = static_file.get_response(request.method, request.META)
    body = b""
    if found.file is not None:
        with found.file as file:
            body = file.read()
    response = HttpResponse(body, status=int(found.status))
    del response["Content-Type"]
    for name, value in found.headers:
        response[name] = value
    return response
