"""Example cache routes, for logged-in users: store, read and delete JSON values by key, and a
computed value cached with get-or-compute, which every replica then serves."""

import os
import socket
import time
from typing import Annotated, Any

from litestar import Controller, delete, get, put, status_codes
from litestar.exceptions import HTTPException, NotFoundException
from litestar.params import JSONBody, PathParameter
from pydantic import BaseModel, Field

from ..cache import MAX_TTL_SECONDS
from .dependencies import CacheDep, require_login

KeyParam = Annotated[str, PathParameter(pattern=r"^[A-Za-z0-9._:-]{1,100}$")]


class CacheEntry(BaseModel):
    value: Any
    ttl_seconds: int = Field(default=300, ge=1, le=MAX_TTL_SECONDS)


class ComputedReport(BaseModel):
    name: str
    computed_by: str
    computed_at: float
    cached: bool


class CacheController(Controller):
    path = "/cache"
    tags = ("cache",)
    guards = (require_login,)

    @put("/items/{key:str}", status_code=status_codes.HTTP_204_NO_CONTENT)
    async def put_item(self, key: KeyParam, data: JSONBody[CacheEntry], cache: CacheDep) -> None:
        if data.value is None:
            raise HTTPException(
                "value must not be null", status_code=status_codes.HTTP_422_UNPROCESSABLE_ENTITY
            )
        await cache.set(f"items:{key}", data.value, data.ttl_seconds)

    @get("/items/{key:str}")
    async def get_item(self, key: KeyParam, cache: CacheDep) -> dict[str, Any]:
        value = await cache.get(f"items:{key}")
        if value is None:
            raise NotFoundException("no such item")
        return {"value": value}

    @delete("/items/{key:str}", status_code=status_codes.HTTP_204_NO_CONTENT)
    async def delete_item(self, key: KeyParam, cache: CacheDep) -> None:
        await cache.delete(f"items:{key}")

    @get("/reports/{key:str}")
    async def report(self, key: KeyParam, cache: CacheDep) -> ComputedReport:
        async def compute() -> dict[str, Any]:
            # Stands in for an expensive query; which replica computed it shows the cache is
            # shared.
            return {
                "computed_by": f"{socket.gethostname()}:{os.getpid()}",
                "computed_at": time.time(),
            }

        value, cached = await cache.get_or_compute(f"reports:{key}", 60, compute)
        return ComputedReport(name=key, cached=cached, **value)
