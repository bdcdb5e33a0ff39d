"""Request bodies a view reads as they stream in, instead of Django's buffered body.

Django's ASGI handler reads the whole body into a temporary file before the view runs. That is
right for the small JSON bodies of most routes (the core's request limits bound them), not for
the uploads under ``/files``, which go to the storage chunk by chunk and are never held in
memory or on disk. For those paths the handler (``app.ServiceHandler``) gives Django an empty
body and keeps the ASGI channel for the view: ``streamed_body(request)`` iterates the chunks as
they come, and raises ``ClientDisconnect`` if the client goes away first. Only once the view has
read the body does Django's own disconnect listener get the channel back.
"""

import asyncio
from collections.abc import AsyncIterator

from django.http import HttpRequest

from ..asgi import Message, Receive, Scope
from .routing import asgi_scope

# The path prefixes whose bodies stream to the view.
STREAMED_PREFIXES = ("/files/objects/", "/files/signed/")
STREAM_KEY = "streamed_body"


class ClientDisconnect(Exception):
    """The client went away while its request body was still coming in."""


def is_streamed(scope: Scope) -> bool:
    return scope["method"] in {"PUT", "POST"} and scope["path"].startswith(STREAMED_PREFIXES)


class StreamedBody:
    """One request's ASGI channel, shared between the view (the body) and Django (after it)."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._gave_django_its_body = False
        self._read = asyncio.Event()
        self._complete = False
        self._started = False

    async def chunks(self) -> AsyncIterator[bytes]:
        if self._started:
            raise RuntimeError("the request body can be read once")
        self._started = True
        try:
            while True:
                message = await self._receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect
                chunk = message.get("body", b"")
                if chunk:
                    yield chunk
                if not message.get("more_body", False):
                    self._complete = True
                    return
        finally:
            self._read.set()

    async def receive(self) -> Message:
        """Django's ``receive``: an empty body at once, then the channel once the view has
        read the whole body. A body that ended otherwise (the client gone, the upload too
        large, the server's cancellation at shutdown) is the view's to answer: Django's
        disconnect listener then waits until the view has answered, and would otherwise cancel
        the view's answer on the next message."""
        if not self._gave_django_its_body:
            self._gave_django_its_body = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._read.wait()
        if not self._complete:
            await asyncio.Future()  # never: Django stops listening once the view has answered
        return await self._receive()


def streamed_body(request: HttpRequest) -> AsyncIterator[bytes]:
    """The request's body as it streams in (a path of ``STREAMED_PREFIXES`` only)."""
    body: StreamedBody = asgi_scope(request)[STREAM_KEY]
    return body.chunks()
