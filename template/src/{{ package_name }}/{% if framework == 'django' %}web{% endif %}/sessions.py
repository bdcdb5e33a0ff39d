"""``request.session``: Django's session API over the core's session.

There is one session system, the core's (``sessions/``): records in the shared store, signed
cookies, rotation at login, compare-and-set writes, saved by the core's ASGI
``SessionMiddleware`` before the response starts. ``CoreSession`` gives views Django's
``SessionBase`` interface over it; ``session_middleware`` (the first entry of ``MIDDLEWARE``)
puts one on each request. Nothing is read from the store until a view asks. An async view uses
the async methods, ``await request.session.aget("user")``, ``aset``, ``apop``, ``acycle_key()``
(login: a new ID), ``aflush()`` (logout: the record deleted, the cookie expired); once loaded
(``await request.session.aload()``), the plain mapping methods work too. A synchronous view (the
admin's: Django runs it in a worker thread) uses the plain methods, ``request.session["user"]``,
``cycle_key()``, ``flush()``: the first one reads the session on the server's event loop
(asgiref's ``async_to_sync``) while the worker thread waits.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

from asgiref.sync import async_to_sync
from django.contrib.sessions.backends.base import SessionBase
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils.decorators import async_only_middleware

from ..asgi import Scope
from ..sessions import Session, request_session

GetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


class SessionNotLoaded(RuntimeError):
    """A synchronous session method, on the event loop's thread, before the session was read."""


class CoreSession(SessionBase):
    """Django's ``SessionBase`` over the request's core session, read on first async use."""

    def __init__(self, scope: Scope) -> None:
        super().__init__()
        self._scope = scope
        self._core: Session | None = None

    async def aload(self) -> Session:  # type: ignore[override]
        """The core session, read from the store on the first call of the request."""
        if self._core is None:
            self._core = await request_session(self._scope)
        return self._core

    @property
    def core(self) -> Session:
        if self._core is None:
            if _on_event_loop():
                raise SessionNotLoaded(
                    "the session is read from the shared store by the async methods: "
                    "await request.session.aload() (or aget, aset...) first"
                )
            # A synchronous view's worker thread: the store's client belongs to the server's
            # event loop, so the read runs there while this thread waits.
            return async_to_sync(self.aload)()
        return self._core

    def _get_session(self, no_load: bool = False) -> Session:
        self.accessed = True
        return self.core

    async def _aget_session(self, no_load: bool = False) -> Session:
        self.accessed = True
        return await self.aload()

    _session = property(_get_session)

    @property
    def session_key(self) -> str | None:
        return self._core.id if self._core is not None else None

    def load(self) -> Session:  # type: ignore[override]
        return self.core

    def clear(self) -> None:
        self.core.clear()
        self.modified = True

    def cycle_key(self) -> None:
        """A new session ID when saved (login): an ID known before is worthless after."""
        self.core.rotate()

    async def acycle_key(self) -> None:
        (await self.aload()).rotate()

    def flush(self) -> None:
        """Delete the record and expire the cookie (logout)."""
        self.core.end()

    async def aflush(self) -> None:
        (await self.aload()).end()

    def _saved_by_the_core(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise NotImplementedError(
            "the core's session middleware saves the session before the response starts"
        )

    exists = create = save = delete = _saved_by_the_core
    aexists = acreate = asave = adelete = _saved_by_the_core


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@async_only_middleware
def session_middleware(get_response: GetResponse) -> GetResponse:
    """Django middleware: ``request.session`` for every request, read only when used."""

    async def middleware(request: HttpRequest) -> HttpResponseBase:
        request.session = CoreSession(request.scope)  # type: ignore[attr-defined]
        return await get_response(request)

    return middleware
