"""The running application's core services, for Django's process-wide storage and cache.

Django builds its storage (``STORAGES``) and cache (``CACHES``) backends once per process, from
settings, while the core's object storage and shared store belong to an application and to the
event loop that application serves on (their connections cannot be used from another loop). So
each application binds its services here when its lifespan starts and unbinds them when it
stops; Django's backends (``file_storage.py``, ``django_cache.py``) use the newest bound
application's, as Django's ``DATABASES`` is the newest application's.

Two ways in, neither of which ever creates an event loop:

- ``run(coroutine, services)``, for Django's synchronous APIs (``default_storage.save``, a
  ``FileField`` saved by the ORM, ``cache.get`` in sync code): called from a worker thread
  (``sync_to_async``, a management command's thread, a test), it hands the coroutine to the
  server's loop and waits for it. On a thread that runs an event loop it would block that loop,
  so it raises Django's ``SynchronousOnlyOperation`` instead, as the ORM does.
- ``on_loop(coroutine, services)``, for the async APIs (``await cache.aget(...)``): awaited on
  the server's loop (a view), it runs directly; from any other loop, on the server's.
"""

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from django.core.exceptions import SynchronousOnlyOperation

from ..storage import ObjectStorage
from ..store import KeyValueStore


@dataclass(frozen=True, eq=False)
class BoundServices:
    """What Django's storage and cache backends use of one running application."""

    loop: asyncio.AbstractEventLoop
    storage: ObjectStorage
    store: KeyValueStore
    # KEY_NAMESPACE: every key the backends write starts with it.
    namespace: str
    # STORAGE_SIGNED_URL_SECONDS: the lifetime of the URLs ``Storage.url`` hands out.
    signed_url_seconds: int


class ServiceNotRunning(RuntimeError):
    """Django's storage or cache was used with no application started in this process."""


T = TypeVar("T")

_bound: list[BoundServices] = []


def bind(services: BoundServices) -> None:
    """Make ``services`` the ones Django's backends use (called as the application starts)."""
    _bound.append(services)


def unbind(services: BoundServices) -> None:
    """Called as the application stops: the previous application's services, if one still
    runs, are used again."""
    if services in _bound:
        _bound.remove(services)


def current() -> BoundServices:
    """The newest running application's services."""
    if not _bound:
        raise ServiceNotRunning(
            "Django's storage and cache use the running service's connections: start the "
            "application (web.app.create_app, served by its lifespan) before using them"
        )
    return _bound[-1]


def schedule(coroutine: Coroutine[Any, Any, Any], services: BoundServices) -> None:
    """Start ``coroutine`` on the services' loop without waiting for it (from any thread)."""
    try:
        asyncio.run_coroutine_threadsafe(coroutine, services.loop)
    except RuntimeError:  # the loop is closed: nothing left to run it for
        coroutine.close()


class _Bridge:
    """``run`` and ``on_loop`` (module-level names below)."""

    @staticmethod
    def run(coroutine: Coroutine[Any, Any, T], services: BoundServices) -> T:
        """Await ``coroutine`` on the services' loop from a synchronous caller; return its
        result."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run_coroutine_threadsafe(coroutine, services.loop).result()
        coroutine.close()  # never awaited: no "coroutine was never awaited" warning
        raise SynchronousOnlyOperation(
            "Django's storage and cache reach the shared services over the network: from async "
            "code, await the cache's a-methods (await cache.aget(...)) or wrap the storage call "
            "in asgiref's sync_to_async (await sync_to_async(default_storage.save)(name, content))"
        )

    @staticmethod
    async def on_loop(coroutine: Coroutine[Any, Any, T], services: BoundServices) -> T:
        """Await ``coroutine`` on the services' loop, from whichever loop the caller runs on."""
        if asyncio.get_running_loop() is services.loop:
            return await coroutine
        future = asyncio.run_coroutine_threadsafe(coroutine, services.loop)
        return await asyncio.wrap_future(future)


# Methods, not generic functions (whose syntax is Python 3.12's), so the module parses on 3.11.
_BRIDGE = _Bridge()
run = _BRIDGE.run
on_loop = _BRIDGE.on_loop
