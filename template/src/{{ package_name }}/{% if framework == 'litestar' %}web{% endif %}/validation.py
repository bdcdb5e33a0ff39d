"""422 answers to invalid input, in the FastAPI adapter's shape, never echoing the request back.

Litestar answers invalid input with a 400; this service answers 422 with
``{"detail": [{"type", "loc", "msg", ...}]}`` whichever framework serves it, a body that is not
JSON included. Litestar's decoder stops at a body's first error, so an invalid body is checked
again by pydantic, which reports every error with its ``input``; the other parameters' errors
come from Litestar's messages. Either way the answer is bounded: the first ``MAX_ERRORS``
errors, short scalar inputs only, long location parts cut.
"""

from enum import Enum
from functools import lru_cache
from typing import Any

from litestar import Request, Response
from litestar.datastructures import State
from litestar.exceptions import ValidationException
from litestar.types import Empty
from litestar.utils.scope.state import ScopeState
from pydantic import PydanticSchemaGenerationError, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

MAX_ERRORS = 20
MAX_ECHO_CHARS = 64
# The parameter Litestar passes the request body in.
BODY_PARAMETER = "data"
MALFORMED_BODY = {"type": "json_invalid", "loc": ["body"], "msg": "JSON decode error"}

AnyRequest = Request[Any, Any, State]


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
    short = (
        value is None
        or isinstance(value, bool | int | float)
        or (isinstance(value, str) and len(value) <= MAX_ECHO_CHARS)
    )
    if "input" in error and short:  # Litestar's own messages carry no input
        bounded["input"] = value
    context = error.get("ctx")
    if isinstance(context, dict):
        bounded["ctx"] = {key: _short(str(item)) for key, item in context.items()}
    return bounded


@lru_cache(maxsize=256)
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def body_errors(request: AnyRequest) -> list[dict[str, Any]]:
    """Every error pydantic finds in the request's JSON body; none if it is valid or absent."""
    body = request.route_handler.parsed_fn_signature.parameters.get(BODY_PARAMETER)
    decoded = ScopeState.from_scope(request.scope).json  # as Litestar decoded it, if it did
    if body is None or decoded is Empty:
        return []
    try:
        _adapter(body.annotation).validate_python(decoded)
    except PydanticValidationError as exc:
        return [{**error, "loc": ["body", *error["loc"]]} for error in exc.errors()]
    except PydanticSchemaGenerationError:
        return []  # a body type pydantic does not know: Litestar's messages speak for it
    return []


def _from_message(message: dict[str, Any]) -> dict[str, Any]:
    """One of Litestar's messages (``key``, ``message``, ``source``) as a pydantic-style error."""
    key = str(message.get("key", ""))
    text = str(message.get("message", ""))
    source = message.get("source")
    source = source.value if isinstance(source, Enum) else source
    if key == BODY_PARAMETER:
        location = ["body"]
    else:
        location = [*([str(source)] if source else []), *key.split(".")]
    if text == repr(key):  # how Litestar reports a value that is missing altogether
        return {"type": "missing", "loc": location, "msg": "Field required"}
    return {"type": "value_error", "loc": location, "msg": text}


def request_errors(request: AnyRequest, exc: ValidationException) -> list[dict[str, Any]]:
    body = body_errors(request)
    messages = exc.extra if isinstance(exc.extra, list) else []
    if body and getattr(exc.__cause__, "errors", None) is not None:
        messages = []  # a pydantic model's errors, Litestar's messages only repeat them
    others = [
        _from_message(message)
        for message in messages
        if isinstance(message, dict)
        and not (body and (message.get("source") == "body" or message.get("key") == "data"))
    ]
    return [*body, *others]


def bounded_response(errors: list[dict[str, Any]]) -> Response[dict[str, Any]]:
    content: dict[str, Any] = {"detail": [bounded_error(error) for error in errors[:MAX_ERRORS]]}
    if len(errors) > MAX_ERRORS:
        content["more_errors"] = len(errors) - MAX_ERRORS
    return Response(content, status_code=422)


def bounded_validation_error(
    request: AnyRequest, exc: ValidationException
) -> Response[dict[str, Any]]:
    """The handler of ValidationException: a bounded 422."""
    return bounded_response(request_errors(request, exc))


def malformed_body(request: AnyRequest, exc: Exception) -> Response[dict[str, Any]]:
    """The answer to a body that is not JSON: a 422, like invalid JSON content."""
    return bounded_response([MALFORMED_BODY])
