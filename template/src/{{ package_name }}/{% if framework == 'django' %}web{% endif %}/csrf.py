"""Django's CSRF protection (``CsrfViewMiddleware``) next to the core's origin check.

Two checks, each for the requests it fits:

- The core's ``security.csrf.CsrfMiddleware`` runs before Django on every request: an unsafe
  request carrying the session cookie must come from this origin or a trusted one
  (``Origin``, else ``Sec-Fetch-Site``). It is what guards the JSON API: the ``endpoint`` views
  are exempt from Django's token (``routing.Dispatch``), which a JSON client has no page to read.
- Django's check guards every other view (a form, a page a team adds): an unsafe request needs
  the token (the ``csrftoken`` cookie and the ``csrfmiddlewaretoken`` field or ``X-CSRFToken``
  header) and passes Django's ``Origin`` (or, over HTTPS, ``Referer``) check against the same
  trusted origins (``CSRF_TRUSTED_ORIGINS``).

``CsrfViewMiddleware`` is Django's own class, run as async-only middleware: its steps read
headers and the already-read body and do no I/O, so they run on the event loop instead of
hopping to a worker thread three times a request.
"""

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.middleware import csrf

from .errors import json_error


class CsrfViewMiddleware(csrf.CsrfViewMiddleware):
    """Django's CSRF middleware, async-only."""

    sync_capable = False
    async_capable = True

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        self.process_request(request)  # reads the CSRF cookie; answers nothing
        response = await self.get_response(request)  # type: ignore[misc]
        return self.process_response(request, response)

    async def process_view(  # type: ignore[override]
        self, request: HttpRequest, callback: Any, callback_args: Any, callback_kwargs: Any
    ) -> HttpResponseBase | None:
        return super().process_view(request, callback, callback_args, callback_kwargs)


def failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """``CSRF_FAILURE_VIEW``: 403 ``{"detail": "CSRF verification failed: <reason>"}``."""
    return json_error(f"CSRF verification failed: {reason}", 403)
