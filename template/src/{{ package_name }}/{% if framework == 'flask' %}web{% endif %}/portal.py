"""The sync facade over the async core: Flask views are plain functions on worker threads.

The core (store, cache, storage, jobs, database) is async and its connections belong to the
server's event loop. A view runs on a worker thread while that loop keeps serving, so it hands
each coroutine to the loop and waits for the result: ``run(cache.get(key))``. The loop is the
one the ASGI entry (``app.FlaskService``) was called on, bound per request in a context variable
that the WSGI bridge copies into the view's thread. No event loop is ever created per request,
and one pool per process serves every thread (the chart's connection budget holds). Database
work goes through ``db.transaction``, which runs a view's synchronous SQLAlchemy code through
``run``.

When the server cancels a request (its shutdown grace period ran out), the coroutines the view
is waiting on are cancelled too: ``run`` then raises ``concurrent.futures.CancelledError`` in
the view, which can still answer (an interrupted upload answers 499) before the thread ends.
"""

import asyncio
from collections.abc import AsyncIterable, Coroutine, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

T = TypeVar("T")


@dataclass
class RequestPortal:
    """One request's way to the server's loop, and the coroutines it is waiting on there."""

    loop: asyncio.AbstractEventLoop
    tasks: set["asyncio.Task[Any]"] = field(default_factory=set)
    cancelled: bool = False

    def cancel(self) -> None:
        """Cancel what the view waits on now, and anything it hands over later."""
        self.cancelled = True
        for task in list(self.tasks):
            task.cancel()


_current: ContextVar[RequestPortal] = ContextVar("request_portal")


def bind(loop: asyncio.AbstractEventLoop) -> RequestPortal:
    """Called by the ASGI entry on the server's loop, before the request goes to a thread."""
    portal = RequestPortal(loop)
    _current.set(portal)
    return portal


class Portal:
    """``run`` and ``iterate`` (module-level names below): the views' way to the server's loop."""

    @staticmethod
    def current() -> RequestPortal:
        try:
            return _current.get()
        except LookupError:
            message = "no request served by the ASGI entry (web.app.FlaskService)"
            raise RuntimeError(message) from None

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Await ``coroutine`` on the server's loop from a view's thread; return its result."""
        try:
            portal = self.current()
        except RuntimeError:
            coroutine.close()  # never awaited: no "coroutine was never awaited" warning
            raise

        async def tracked() -> T:
            task = cast("asyncio.Task[T]", asyncio.current_task())  # set: this runs as a task
            portal.tasks.add(task)
            try:
                if portal.cancelled:
                    coroutine.close()
                    raise asyncio.CancelledError
                return await coroutine
            finally:
                portal.tasks.discard(task)

        return asyncio.run_coroutine_threadsafe(tracked(), portal.loop).result()

    def iterate(self, iterable: AsyncIterable[T]) -> Iterator[T]:
        """A sync iterator over an async one, each item fetched on the server's loop (streamed
        downloads); closing it early (a HEAD request, the client gone) closes the async
        iterator too, so an abandoned download releases its connection."""
        iterator = aiter(iterable)

        async def next_item() -> list[T]:
            try:
                return [await anext(iterator)]
            except StopAsyncIteration:
                return []

        try:
            while item := self.run(next_item()):
                yield item[0]
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None:
                self.run(close())

    def loop(self) -> asyncio.AbstractEventLoop:
        """The server's event loop."""
        return self.current().loop


# Methods, not generic functions: the same source serves projects on Python 3.11 and later.
_PORTAL = Portal()
run = _PORTAL.run
iterate = _PORTAL.iterate
loop = _PORTAL.loop
