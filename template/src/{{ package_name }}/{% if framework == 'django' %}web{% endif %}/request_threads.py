"""Each request's thread-sensitive work on a thread of its own, reused across requests.

Django's ASGI handler runs every request inside an asgiref ``ThreadSensitiveContext``: the
request's synchronous work (on every request ``response.close()`` and its ``request_finished``
receivers; sync views and middleware, and the ORM's calls, where there are any) runs on one
thread that belongs to that request alone, so two requests never share a thread and a request's
database connection never moves between threads. Django starts that thread for each request,
and one more to join it at the end. ``RequestThreads`` keeps both guarantees with threads that
outlive their request, as a WSGI server's thread pool does: a request takes an idle
single-thread executor (or starts one) and hands it back once it has answered. asgiref's
``ThreadSensitiveContext(executor=...)`` is the documented way to supply one. Measured in
``benchmarks/stack_overhead.py`` (docs/service/benchmarks.md).
"""

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from asgiref.sync import ThreadSensitiveContext

# Idle threads kept for the next requests; after a burst, threads beyond this many end.
MAX_IDLE_THREADS = 32


class RequestThreads:
    """Single-thread executors lent to requests; used from the event loop's thread only."""

    def __init__(self, max_idle: int = MAX_IDLE_THREADS) -> None:
        self._idle: list[ThreadPoolExecutor] = []
        self._max_idle = max_idle

    @property
    def idle(self) -> int:
        """Threads waiting for the next request."""
        return len(self._idle)

    @asynccontextmanager
    async def context(self) -> AsyncIterator[None]:
        """The thread-sensitive context of one request, on an idle thread or a new one."""
        if self._idle:
            executor = self._idle.pop()
        else:
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")
        try:
            async with ThreadSensitiveContext(executor=executor):
                yield
        except BaseException:
            # A cancelled request may leave a call running on its thread: never lend it again.
            executor.shutdown(wait=False)
            raise
        if len(self._idle) < self._max_idle:
            self._idle.append(executor)
        else:
            executor.shutdown(wait=False)

    def close(self) -> None:
        """End the idle threads (at shutdown, once the requests have ended)."""
        idle, self._idle = self._idle, []
        for executor in idle:
            executor.shutdown(wait=False)
