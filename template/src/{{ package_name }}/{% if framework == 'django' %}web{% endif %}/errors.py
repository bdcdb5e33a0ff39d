"""Error answers: every error of the service is ``{"detail": ...}`` with its status.

A view raises ``HttpError(status, detail)`` for an answer of its own, or lets a domain exception
through (``StoreUnavailable``, ``ObjectNotFound``...): ``routing.endpoint`` answers it with the
handler registered for its type here (``@handles(ExceptionType)``; a route module registers its
own). Anything else is a failure of the service: logged with its traceback, answered 500.
``handler404`` and ``handler500`` in ``urls.py`` are Django's answers for an unknown path and for
an error outside any view.
"""

import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from django.http import HttpRequest, HttpResponse

from ..observability.logs import get_logger
from ..request_limits import RequestBodyTooLarge
from ..store import StoreUnavailable
from .validation import ValidationFailed, bounded_validation_error

logger = get_logger(__name__)

Handler = Callable[[Any], HttpResponse]
H = TypeVar("H", bound=Handler)
HANDLERS: dict[type[BaseException], Handler] = {}


class HttpError(Exception):
    """An answer with ``status`` and ``{"detail": detail}``, raised from a view."""

    def __init__(
        self, status: int, detail: object, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})


def json_response(
    content: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> HttpResponse:
    """``content`` as JSON (any ``json.dumps`` can write) with ``status``."""
    return HttpResponse(
        json.dumps(content), status=status, headers=headers, content_type="application/json"
    )


def json_error(
    detail: object, status: int, headers: Mapping[str, str] | None = None
) -> HttpResponse:
    """``{"detail": ...}`` with ``status``, as every error of the service answers."""
    return json_response({"detail": detail}, status, headers)


def handles(*kinds: type[BaseException]) -> Callable[[H], H]:
    """Register the decorated function as the answer to exceptions of ``kinds``."""

    def register(handler: H) -> H:
        for kind in kinds:
            HANDLERS[kind] = handler
        return handler

    return register


def answer(exc: Exception) -> HttpResponse | None:
    """The registered answer to ``exc`` (the most specific type's), or None."""
    for kind in type(exc).__mro__:
        handler = HANDLERS.get(kind)
        if handler is not None:
            return handler(exc)
    return None


@handles(HttpError)
def http_error(exc: HttpError) -> HttpResponse:
    return json_error(exc.detail, exc.status, exc.headers)


@handles(ValidationFailed)
def validation_failed(exc: ValidationFailed) -> HttpResponse:
    return bounded_validation_error(exc)


@handles(RequestBodyTooLarge)
def body_too_large(exc: RequestBodyTooLarge) -> HttpResponse:
    # Expected, not a failure: the request limits middleware answers the client with its 413.
    return json_error(str(exc), 413)


@handles(StoreUnavailable)
def store_unavailable(exc: StoreUnavailable) -> HttpResponse:
    logger.warning("store unavailable", error=str(exc))
    return json_error("shared store unavailable", 503, {"Retry-After": "1"})


def internal_error(request: HttpRequest, exc: Exception) -> HttpResponse:
    """A view's unexpected failure: logged with its traceback, answered 500."""
    logger.error("unhandled exception", path=request.path, exc_info=exc)
    return HttpResponse("Internal Server Error", status=500, content_type="text/plain")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's ``handler404``: no route matched the path."""
    return json_error("Not Found", 404)


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's ``handler500``: an error outside any view (Django has logged it)."""
    return HttpResponse("Internal Server Error", status=500, content_type="text/plain")
