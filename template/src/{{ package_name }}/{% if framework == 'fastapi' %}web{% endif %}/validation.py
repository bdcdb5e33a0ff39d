"""422 answers that never echo the request back.

FastAPI's default answer to invalid input lists every error with the ``input`` that caused it:
a missing field echoes the whole body, a 1 MiB string comes back as 1 MiB, and a list of a
hundred thousand bad items gives a hundred thousand errors. Here the answer is bounded: the first
``MAX_ERRORS`` errors, short scalar inputs only, long location parts cut.
"""

from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

MAX_ERRORS = 20
MAX_ECHO_CHARS = 64


def _short(value: object) -> object:
    if isinstance(value, str) and len(value) > MAX_ECHO_CHARS:
        return value[:MAX_ECHO_CHARS] + "..."
    return value


def bounded_error(error: dict[str, Any]) -> dict[str, Any]:
    """One validation error without any part of the input longer than MAX_ECHO_CHARS."""
    bounded = {key: value for key, value in error.items() if key not in {"input", "ctx"}}
    bounded["msg"] = str(error.get("msg", ""))[: MAX_ECHO_CHARS * 4]
    bounded["loc"] = [_short(part) for part in error.get("loc", ())]
    value = error.get("input")
    if (
        value is None
        or isinstance(value, bool | int | float)
        or (isinstance(value, str) and len(value) <= MAX_ECHO_CHARS)
    ):
        bounded["input"] = value
    context = error.get("ctx")
    if isinstance(context, dict):
        bounded["ctx"] = {key: _short(str(item)) for key, item in context.items()}
    return bounded


async def bounded_validation_error(request: Request, exc: Exception) -> JSONResponse:
    """The handler of RequestValidationError: a bounded 422."""
    errors = list(exc.errors()) if isinstance(exc, RequestValidationError) else []
    content: dict[str, Any] = {
        "detail": jsonable_encoder([bounded_error(dict(error)) for error in errors[:MAX_ERRORS]])
    }
    if len(errors) > MAX_ERRORS:
        content["more_errors"] = len(errors) - MAX_ERRORS
    return JSONResponse(content, status_code=422)
