"""Django's file storage (``STORAGES["default"]``) over the core's object storage.

``default_storage`` and every ``FileField`` without a storage of its own store files where the
service's ``/files`` routes do: the bucket of the chosen provider, or the shared directory.

- ``save`` streams the content's chunks into the core's upload (``ObjectStorage.put``): one
  chunk of ``UPLOAD_CHUNK_BYTES`` at a time is read, never the whole file.
- ``open`` returns a ``File`` that fetches the object's chunks as it is read.
- ``url`` is the core's signed GET URL, valid ``STORAGE_SIGNED_URL_SECONDS``, pointing at
  ``STORAGE_PUBLIC_ENDPOINT_URL`` when set: a bucket is private, so an unsigned URL would not
  open, and the browser fetches the file from the storage, not through the service.
- Names are never overwritten. Django picks a free name (``get_available_name``: the name, or
  one with a random suffix) by asking whether it exists, which two replicas saving the same
  name at once would both pass, one upload then replacing the other. So the chosen name is
  also claimed in the shared store (``add``, atomic on the server) until its upload ends: a
  concurrent save elsewhere finds the claim and takes another name. Object storage offers no
  conditional write for a streamed (multipart) upload, so the claim lives in the store.

Django calls these methods synchronously; they run on the service's event loop through
``service_binding.run``, and refuse to run on an event loop's own thread (from async code:
``await sync_to_async(default_storage.save)(name, content)``).
"""

import asyncio
import errno
import functools
import hashlib
import io
import mimetypes
import os
import pathlib
import re
import unicodedata
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from datetime import datetime
from typing import Any, TypeVar

from django.core.files.base import File
from django.core.files.storage import Storage
from django.utils.deconstruct import deconstructible

from ..storage import DEFAULT_CONTENT_TYPE, ObjectInfo, ObjectNotFound, StoredObject
from . import service_binding
from .service_binding import BoundServices

T = TypeVar("T")

# Read from the content and handed to the upload at a time; the core cuts its own parts.
UPLOAD_CHUNK_BYTES = 1024 * 1024
# Buffer of a file being read (the object's chunks are fetched as it fills).
READ_BUFFER_BYTES = 256 * 1024
# The longest a save may keep a name claimed; a longer upload's name could be claimed again.
CLAIM_SECONDS = 3600
# What a file name may not contain to be a key segment on every provider.
_UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]")


@deconstructible
class ServiceStorage(Storage):
    """The core's object storage as a Django ``Storage``; ``services`` is for tests (default:
    the running application's, ``service_binding.current()``)."""

    def __init__(self, services: BoundServices | None = None) -> None:
        self._services = services

    @property
    def services(self) -> BoundServices:
        return self._services or service_binding.current()

    def _run(self, operation: Callable[[BoundServices], Coroutine[Any, Any, T]]) -> T:
        """``operation``'s coroutine, awaited on the services' loop."""
        services = self.services
        return service_binding.run(operation(services), services)

    def get_valid_name(self, name: str) -> str:
        """Django's cleaning (spaces to ``_``, punctuation dropped), then down to the characters
        every provider takes (``storage.KEY_PATTERN``): ``Café menu (2).pdf`` is
        ``Cafe_menu_2.pdf``."""
        ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
        cleaned = _UNSAFE_CHARACTERS.sub("_", super().get_valid_name(ascii_name or "_"))
        return cleaned.lstrip(".") or "file"

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        """A name no object has and no concurrent save holds, claimed until ``_save`` ends."""
        directory, file_name = os.path.split(name)
        extension = "".join(pathlib.PurePath(file_name).suffixes)
        root = file_name.removesuffix(extension)
        while True:
            # Django's choice (the name, or with a random suffix, within max_length).
            name = super().get_available_name(name, max_length)
            if self._run(functools.partial(_claim, name=name)):
                return name
            # Claimed by a save in progress: the next try has a suffix of its own.
            name = os.path.join(directory, self.get_alternative_name(root, extension))

    def _save(self, name: str, content: "File[bytes]") -> str:
        content_type = (
            getattr(content, "content_type", None)
            or mimetypes.guess_type(name)[0]
            or DEFAULT_CONTENT_TYPE
        )
        self._run(lambda services: _upload(services, name, content, content_type))
        return name

    def _open(self, name: str, mode: str = "rb") -> "File[bytes]":
        if mode != "rb":
            raise ValueError(f"objects open for reading in binary ('rb'), not {mode!r}")
        services = self.services
        stored = service_binding.run(_get(services, name), services)
        file = File(io.BufferedReader(ObjectReader(stored, services), READ_BUFFER_BYTES), name)
        file.size = stored.info.size
        file.mode = mode
        return file

    def delete(self, name: str) -> None:
        self._run(lambda services: services.storage.delete(name))

    def exists(self, name: str) -> bool:
        return self._run(lambda services: services.storage.exists(name))

    def size(self, name: str) -> int:
        return self._head(name).size

    def get_modified_time(self, name: str) -> datetime:
        modified = self._head(name).last_modified
        if modified is None:
            raise NotImplementedError("this storage reports no modification time")
        return modified

    def url(self, name: str | None) -> str:
        return self._run(
            lambda services: services.storage.signed_url(
                name or "", "GET", services.signed_url_seconds
            )
        )

    def _head(self, name: str) -> ObjectInfo:
        return self._run(lambda services: _head(services, name))


def claim_key(services: BoundServices, name: str) -> str:
    # Hashed: a store key stays short and plain whatever the name (Memcached: 250 bytes).
    digest = hashlib.sha256(name.encode()).hexdigest()
    return f"{services.namespace}:storage-claim:{digest}"


async def _claim(services: BoundServices, name: str) -> bool:
    key = claim_key(services, name)
    if not await services.store.add(key, b"saving", CLAIM_SECONDS):
        return False
    # Claimed; an upload that ended (and released its claim) since Django checked wins.
    if await services.storage.exists(name):
        await services.store.remove(key)
        return False
    return True


async def _upload(
    services: BoundServices, name: str, content: "File[bytes]", content_type: str
) -> None:
    chunks = iter(content.chunks(UPLOAD_CHUNK_BYTES))

    async def read() -> AsyncIterator[bytes]:
        # The content is a blocking file: each chunk is read on a worker thread.
        while (chunk := await _to_thread(chunks)) is not None:
            yield chunk.encode() if isinstance(chunk, str) else chunk

    try:
        await services.storage.put(name, read(), content_type=content_type)
    finally:
        await services.store.remove(claim_key(services, name))


async def _to_thread(chunks: Iterator[bytes | str]) -> bytes | str | None:
    return await asyncio.to_thread(next, chunks, None)


async def _get(services: BoundServices, name: str) -> StoredObject:
    try:
        return await services.storage.get(name)
    except ObjectNotFound:
        raise FileNotFoundError(errno.ENOENT, "no object under this name", name) from None


async def _head(services: BoundServices, name: str) -> ObjectInfo:
    try:
        return await services.storage.head(name)
    except ObjectNotFound:
        raise FileNotFoundError(errno.ENOENT, "no object under this name", name) from None


class ObjectReader(io.RawIOBase):
    """An object's content as a blocking, read-once file: each read fetches the next chunk of
    the download on the service's loop, so memory holds one chunk, not the object."""

    def __init__(self, stored: StoredObject, services: BoundServices) -> None:
        self._chunks = stored.chunks
        self._services = services
        self._pending = memoryview(b"")
        self._finished = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._pending:
            if self._finished:
                return 0
            chunk = service_binding.run(self._next(), self._services)
            if not chunk:
                self._finished = True
                return 0
            self._pending = memoryview(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    async def _next(self) -> bytes:
        try:
            return await anext(self._chunks)
        except StopAsyncIteration:
            return b""

    def close(self) -> None:
        """Release the download's connection when the file is closed before its end."""
        if not self.closed and not self._finished:
            self._finished = True
            release = getattr(self._chunks, "aclose", None)
            if release is not None:
                # Not waited for: close may run anywhere, even on the loop's own thread.
                service_binding.schedule(release(), self._services)
        super().close()
