"""Example cache routes, for logged-in users: store, read and delete JSON values by key, and a
computed value cached with get-or-compute, which every replica then serves."""

import os
import socket
import time
from typing import Annotated, Any

from django.http import HttpRequest, HttpResponse
from pydantic import BaseModel, Field

from ..cache import MAX_TTL_SECONDS
from . import api_docs
from .dependencies import cache, login_required
from .errors import HttpError, json_response
from .routing import endpoint
from .validation import json_body, parse

KeyParam = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,100}$")]


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


@api_docs.operation(body=CacheEntry, status=204)
@login_required
async def put_item(request: HttpRequest, key: str) -> HttpResponse:
    key = _key(key)
    entry: CacheEntry = await json_body(request, CacheEntry)
    if entry.value is None:
        raise HttpError(422, "value must not be null")
    await cache(request).set(f"items:{key}", entry.value, entry.ttl_seconds)
    return HttpResponse(status=204)


@login_required
async def get_item(request: HttpRequest, key: str) -> HttpResponse:
    value = await cache(request).get(f"items:{_key(key)}")
    if value is None:
        raise HttpError(404, "no such item")
    return json_response({"value": value})


@api_docs.operation(status=204)
@login_required
async def delete_item(request: HttpRequest, key: str) -> HttpResponse:
    await cache(request).delete(f"items:{_key(key)}")
    return HttpResponse(status=204)


@api_docs.operation(response=ComputedReport)
@login_required
async def report(request: HttpRequest, key: str) -> HttpResponse:
    key = _key(key)

    async def compute() -> dict[str, Any]:
        # Stands in for an expensive query; which replica computed it shows the cache is shared.
        return {"computed_by": f"{socket.gethostname()}:{os.getpid()}", "computed_at": time.time()}

    value, cached = await cache(request).get_or_compute(f"reports:{key}", 60, compute)
    return json_response(ComputedReport(name=key, cached=cached, **value).model_dump())


urlpatterns = [
    endpoint(
        "cache/items/<str:key>", name="cache-item", get=get_item, put=put_item, delete=delete_item
    ),
    endpoint("cache/reports/<str:key>", name="cache-report", get=report),
]
