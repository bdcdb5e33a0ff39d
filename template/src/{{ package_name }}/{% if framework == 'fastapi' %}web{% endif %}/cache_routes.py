"""Example cache routes, for logged-in users: store, read and delete JSON values by key, and a
computed value cached with get-or-compute, which every replica then serves."""

import os
import socket
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Response, status
from pydantic import BaseModel, Field

from ..cache import MAX_TTL_SECONDS
from .dependencies import CacheDep, require_login

KeyParam = Annotated[str, Path(pattern=r"^[A-Za-z0-9._:-]{1,100}$")]


router = APIRouter(prefix="/cache", tags=["cache"], dependencies=[Depends(require_login)])


class CacheEntry(BaseModel):
    value: Any
    ttl_seconds: int = Field(default=300, ge=1, le=MAX_TTL_SECONDS)


class ComputedReport(BaseModel):
    name: str
    computed_by: str
    computed_at: float
    cached: bool


@router.put("/items/{key}", status_code=status.HTTP_204_NO_CONTENT)
async def put_item(key: KeyParam, entry: CacheEntry, cache: CacheDep) -> Response:
    if entry.value is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "value must not be null")
    await cache.set(f"items:{key}", entry.value, entry.ttl_seconds)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/items/{key}")
async def get_item(key: KeyParam, cache: CacheDep) -> dict[str, Any]:
    value = await cache.get(f"items:{key}")
    if value is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such item")
    return {"value": value}


@router.delete("/items/{key}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_item(key: KeyParam, cache: CacheDep) -> Response:
    await cache.delete(f"items:{key}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/reports/{key}")
async def report(key: KeyParam, cache: CacheDep) -> ComputedReport:
    async def compute() -> dict[str, Any]:
        # Stands in for an expensive query; which replica computed it shows the cache is shared.
        return {"computed_by": f"{socket.gethostname()}:{os.getpid()}", "computed_at": time.time()}

    value, cached = await cache.get_or_compute(f"reports:{key}", 60, compute)
    return ComputedReport(name=key, cached=cached, **value)
