"""Example cache routes, for logged-in users: store, read and delete JSON values by key, and a
computed value cached with get-or-compute, which every replica then serves."""

import os
import socket
import time
from typing import Annotated, Any

from flask import Blueprint, Response
from pydantic import BaseModel, Field
from werkzeug.exceptions import NotFound, UnprocessableEntity

from ..cache import MAX_TTL_SECONDS
from . import api_docs, portal
from .dependencies import cache, login_required
from .validation import json_body, parse

KeyParam = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,100}$")]

blueprint = Blueprint("cache", __name__, url_prefix="/cache")


@blueprint.before_request
@login_required
def require_login() -> None:
    """Every cache route needs a logged-in session."""


class CacheEntry(BaseModel):
    value: Any
    ttl_seconds: int = Field(default=300, ge=1, le=MAX_TTL_SECONDS)


class ComputedReport(BaseModel):
    name: str
    computed_by: str
    computed_at: float
    cached: bool


def _key(key: str) -> str:
    checked: str = parse(KeyParam, key, "path", "key")
    return checked


@blueprint.put("/items/<key>")
@api_docs.operation(body=CacheEntry, status=204)
def put_item(key: str) -> Response:
    key = _key(key)
    entry: CacheEntry = json_body(CacheEntry)
    if entry.value is None:
        raise UnprocessableEntity("value must not be null")
    portal.run(cache().set(f"items:{key}", entry.value, entry.ttl_seconds))
    return Response(status=204)


@blueprint.get("/items/<key>")
def get_item(key: str) -> dict[str, Any]:
    value = portal.run(cache().get(f"items:{_key(key)}"))
    if value is None:
        raise NotFound("no such item")
    return {"value": value}


@blueprint.delete("/items/<key>")
@api_docs.operation(status=204)
def delete_item(key: str) -> Response:
    portal.run(cache().delete(f"items:{_key(key)}"))
    return Response(status=204)


@blueprint.get("/reports/<key>")
@api_docs.operation(response=ComputedReport)
def report(key: str) -> dict[str, Any]:
    key = _key(key)

    async def compute() -> dict[str, Any]:
        # Stands in for an expensive query; which replica computed it shows the cache is shared.
        return {"computed_by": f"{socket.gethostname()}:{os.getpid()}", "computed_at": time.time()}

    value, cached = portal.run(cache().get_or_compute(f"reports:{key}", 60, compute))
    return ComputedReport(name=key, cached=cached, **value).model_dump()
