"""Input parsed by pydantic, and 422 answers in the FastAPI adapter's shape that never echo the
request back.

Django hands a view raw strings and bytes; views parse them here: ``await json_body(request,
Model)`` for the JSON body, ``parse(Annotation, value, "path", "key")`` for a path value,
``query(request, name, Annotation)`` for a query parameter. Invalid input raises
``ValidationFailed``, which ``routing.endpoint`` answers with 422 and ``{"detail": [{"type",
"loc", "msg", ...}]}`` whichever framework serves it, a body that is not JSON included. The
answer is bounded: the first ``MAX_ERRORS`` errors, short scalar inputs only, long location parts
cut.
"""

import json
from functools import lru_cache
from typing import Any

from django.http import HttpRequest, HttpResponse
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

MAX_ERRORS = 20
MAX_ECHO_CHARS = 64
MALFORMED_BODY = {"type": "json_invalid", "loc": ["body"], "msg": "JSON decode error"}
MISSING_BODY = {"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}


class ValidationFailed(Exception):
    """Invalid input: pydantic-style errors, answered with a bounded 422."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(errors)} validation error(s)")
        self.errors = errors


def _short(value: object) -> object:
    if isinstance(value, str) and len(value) > MAX_ECHO_CHARS:
        return value[:MAX_ECHO_CHARS] + "..."
    return value


def bounded_error(error: dict[str, Any]) -> dict[str, Any]:
    """One validation error without any part of the input longer than MAX_ECHO_CHARS."""
    bounded = {key: value for key, value in error.items() if key not in {"input", "ctx", "url"}}
    bounded["msg"] = str(error.get("msg", ""))[: MAX_ECHO_CHARS * 4]
    bounded["loc"] = [_short(part) for part in error.get("loc", ())]
    value = error.get("input")
    if "input" in error and (
        value is None
        or isinstance(value, bool | int | float)
        or (isinstance(value, str) and len(value) <= MAX_ECHO_CHARS)
    ):
        bounded["input"] = value
    context = error.get("ctx")
    if isinstance(context, dict):
        bounded["ctx"] = {key: _short(str(item)) for key, item in context.items()}
    return bounded


@lru_cache(maxsize=256)
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def parse(annotation: Any, value: object, *location: str | int) -> Any:
    """``value`` validated as ``annotation`` (strings coerced, as in a path or query), errors
    located under ``location`` (``"path", "key"``)."""
    try:
        return _adapter(annotation).validate_python(value)
    except PydanticValidationError as exc:
        raise ValidationFailed(
            [{**error, "loc": [*location, *error["loc"]]} for error in exc.errors()]
        ) from None


async def json_body(request: HttpRequest, annotation: Any, *, required: bool = True) -> Any:
    """The request's JSON body validated as ``annotation``; None when the body is empty and
    not ``required``. (Async so a view awaits it like the rest of its input.)"""
    raw = request.body
    if not raw.strip():
        if required:
            raise ValidationFailed([MISSING_BODY])
        return None
    try:
        decoded = json.loads(raw)
    except ValueError:
        raise ValidationFailed([MALFORMED_BODY]) from None
    return parse(annotation, decoded, "body")


def query(request: HttpRequest, name: str, annotation: Any, default: Any = None) -> Any:
    """The query parameter ``name`` validated as ``annotation``; ``default`` when absent."""
    value = request.GET.get(name)
    if value is None:
        return default
    return parse(annotation, value, "query", name)


def bounded_validation_error(exc: ValidationFailed) -> HttpResponse:
    """The answer to ValidationFailed: a bounded 422."""
    errors = exc.errors
    content: dict[str, Any] = {"detail": [bounded_error(error) for error in errors[:MAX_ERRORS]]}
    if len(errors) > MAX_ERRORS:
        content["more_errors"] = len(errors) - MAX_ERRORS
    return HttpResponse(json.dumps(content), status=422, content_type="application/json")
