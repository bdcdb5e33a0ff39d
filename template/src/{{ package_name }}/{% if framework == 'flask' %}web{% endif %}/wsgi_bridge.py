"""Runs a WSGI application (Flask) inside the core's ASGI server, each request on a worker thread.

a2wsgi's ``WSGIMiddleware`` does the same job, and this module keeps its request side: the WSGI
environ (``build_environ``) and ``wsgi.input`` (``Body``, read from the ASGI channel). What
differs is the answer. a2wsgi hands every response message from the view's thread to the event
loop and waits for it there: the start, each body chunk and the end, three round trips between
threads for a small JSON answer, plus a sender task. Here a response that declares a small
``Content-Length`` is gathered on the thread and handed over once, with the thread's result;
on one core that halves bare Flask's CPU per request (docs/decisions.md, "A WSGI framework is
served by the core's server through its own bridge"). A response without a declared length,
or a larger one (a streamed download), still goes chunk by chunk as the view produces it, each
chunk sent before the next is made, so memory stays bounded and a slow stream is not held back.

A view's thread cannot be interrupted. When the server cancels a request whose view is running
(its shutdown grace period is over), the bridge calls ``on_cancel`` (the app cancels what the
view waits on, so it answers soon), waits up to ``cancelled_answer_seconds`` for that answer and
sends it like any other; only a view that does not answer by then leaves the request cancelled.
A request still queued for a thread is cancelled at once: its view never runs.
"""

import asyncio
import contextvars
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, cast

from a2wsgi.wsgi import Body, build_environ

from ..asgi import Message, Receive, Scope, Send

# A response declaring at most this many bytes is gathered on the view's thread and handed to
# the loop in one go; a larger one is streamed. Bounds the memory one request can hold here.
GATHERED_RESPONSE_BYTES = 64 * 1024

ExcInfo = tuple[type[BaseException], BaseException, TracebackType]
WSGIApp = Callable[[dict[str, Any], Callable[..., Callable[[bytes], None]]], Iterable[bytes]]


class WSGIBridge:
    """The ASGI application serving ``app`` on a pool of ``workers`` threads: HTTP requests
    (the server loads no WebSocket protocol) and the lifespan, which a WSGI app does not have."""

    def __init__(
        self,
        app: WSGIApp,
        workers: int,
        on_cancel: Callable[[], None] | None = None,
        cancelled_answer_seconds: float = 5.0,
    ) -> None:
        self.app = app
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="WSGI")
        self.on_cancel = on_cancel
        self.cancelled_answer_seconds = cancelled_answer_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan_without_steps(receive, send)
            return
        loop = asyncio.get_running_loop()
        # a2wsgi types the scope and environ as TypedDicts, the core as mappings: the same.
        environ = cast(dict[str, Any], build_environ(scope, Body(loop, receive)))  # type: ignore[arg-type]
        exchange = _Exchange(self.app, loop, send)
        # The view sees the request's context variables (the portal to this loop, for one).
        context = contextvars.copy_context()
        answer = self.executor.submit(context.run, exchange.run, environ)
        try:
            gathered = await asyncio.wrap_future(answer)
        except asyncio.CancelledError:
            if self.on_cancel is None or answer.cancelled():  # no view running to wait for
                raise
            self.on_cancel()
            answered = asyncio.wrap_future(answer)
            done, _ = await asyncio.wait({answered}, timeout=self.cancelled_answer_seconds)
            if not done:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # the cancellation is handled: the view's answer goes out
            gathered = answered.result()
        if gathered is not None:
            start, body = gathered
            await send(start)
            await send({"type": "http.response.body", "body": body})


async def lifespan_without_steps(receive: Receive, send: Send) -> None:
    """The ASGI lifespan of an app with nothing to start or stop: each step done at once."""
    for step in ("startup", "shutdown"):
        await receive()
        await send({"type": f"lifespan.{step}.complete"})


class _Exchange:
    """One request's WSGI call, on its worker thread."""

    def __init__(self, app: WSGIApp, loop: asyncio.AbstractEventLoop, send: Send) -> None:
        self.app = app
        self.loop = loop
        self.asgi_send = send
        self.start: Message = {}
        self.declared_length: int | None = None
        self.started = False  # the start message has gone to the server

    def send(self, message: Message) -> None:
        """Send ``message`` on the server's loop and wait until it is sent (backpressure)."""
        asyncio.run_coroutine_threadsafe(self._send_on_loop(message), self.loop).result()

    async def _send_on_loop(self, message: Message) -> None:
        await self.asgi_send(message)

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None and self.started:
            raise exc_info[1].with_traceback(exc_info[2])  # too late to change the answer
        self.start = {
            "type": "http.response.start",
            "status": int(status.split(" ", 1)[0]),
            "headers": [
                (name.strip().lower().encode("latin1"), value.strip().encode("latin1"))
                for name, value in headers
            ],
        }
        declared = next((v for n, v in headers if n.lower() == "content-length"), None)
        self.declared_length = int(declared) if declared and declared.isdigit() else None
        return self.write

    def write(self, chunk: bytes) -> None:
        """A chunk of a streamed answer (also WSGI's legacy ``write`` callable)."""
        if not self.started:
            self.started = True
            self.send(self.start)
        if chunk:
            self.send({"type": "http.response.body", "body": chunk, "more_body": True})

    def run(self, environ: dict[str, Any]) -> tuple[Message, bytes] | None:
        """The view's answer: (start, body) to send from the loop when it was gathered, None
        when it has been streamed from here already."""
        iterable = self.app(environ, self.start_response)
        try:
            length = self.declared_length
            if not self.started and length is not None and length <= GATHERED_RESPONSE_BYTES:
                return self.start, b"".join(iterable)
            for chunk in iterable:
                self.write(chunk)
            self.write(b"")  # the start, if no chunk sent it
            self.send({"type": "http.response.body", "body": b""})
            return None
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()
