"""The obstore implementation of ObjectStorage, shared by the S3 and Azure modules.

obstore (Rust's object_store) does the streaming: ``put`` cuts the incoming stream into parts
of ``STORAGE_PART_SIZE_BYTES`` and sends up to ``STORAGE_UPLOAD_CONCURRENCY`` of them at once as
a multipart upload (S3) or staged blocks (Azure), so memory stays near part size x concurrency;
``get`` hands out the body as it arrives. Each provider module only builds the two stores: one
for the service's own requests, one for signing URLs against the public endpoint (signatures
cover the host name, so a URL signed for the internal address fails on the public one).

An upload that fails or is cancelled leaves no multipart upload open: obstore aborts it when the
stream it reads raises, but not when its own task is cancelled (the parts would stay stored and
billed), so ``put`` never lets cancellation reach obstore: it stops the stream instead.
"""

import asyncio
import re
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from datetime import timedelta
from typing import Any, Literal

import obstore
from obstore.exceptions import (
    AlreadyExistsError,
    BaseError,
    InvalidPathError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
)
from obstore.store import AzureStore, S3Store

from . import (
    DEFAULT_CONTENT_TYPE,
    InvalidObjectKey,
    ObjectConflict,
    ObjectInfo,
    ObjectNotFound,
    ObjectRejected,
    SignedUpload,
    StorageError,
    StorageForbidden,
    StorageUnavailable,
    StoredObject,
    validate_key,
    validate_metadata,
    validate_prefix,
)
from .settings import StorageSettings

ObstoreStore = S3Store | AzureStore
# obstore raises Python's own FileNotFoundError for a missing object (and may raise
# PermissionError), besides the errors of its own hierarchy.
OBSTORE_ERRORS = (BaseError, FileNotFoundError, PermissionError)

# Attributes obstore maps to the provider's own headers; every other name is user metadata.
_STANDARD_ATTRIBUTES = frozenset(
    {"Content-Type", "Content-Disposition", "Content-Encoding", "Content-Language", "Cache-Control"}
)
READ_CHUNK_BYTES = 256 * 1024
# obstore reports the provider's HTTP status only in the message ("... status code: 400 ...").
_CLIENT_ERROR_STATUS = re.compile(r"status(?: code)?:? (4\d\d)\b")
# 4xx statuses that mean "try again", not "the request is wrong".
_RETRYABLE_CLIENT_STATUSES = frozenset({"408", "425", "429"})


def client_options(settings: StorageSettings, endpoint: str | None) -> dict[str, Any]:
    options: dict[str, Any] = {
        "timeout": timedelta(seconds=settings.storage_timeout_seconds),
        "connect_timeout": timedelta(seconds=settings.storage_connect_timeout_seconds),
    }
    if endpoint is not None and endpoint.startswith("http://"):
        options["allow_http"] = True
    return options


def retry_config(settings: StorageSettings) -> dict[str, Any]:
    return {
        "max_retries": settings.storage_retries,
        "retry_timeout": timedelta(seconds=settings.storage_timeout_seconds),
        "backoff": {
            "init_backoff": timedelta(milliseconds=100),
            "max_backoff": timedelta(seconds=2),
            "base": 2,
        },
    }


def translate(exc: Exception, action: str) -> StorageError:
    """The provider-neutral error for an obstore exception."""
    if isinstance(exc, NotFoundError | FileNotFoundError):
        return ObjectNotFound(f"{action}: not found")
    if isinstance(exc, PermissionDeniedError | UnauthenticatedError | PermissionError):
        return StorageForbidden(f"{action}: the storage refused the service's credentials")
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, InvalidPathError):
        return InvalidObjectKey(f"{action}: {first_line[:300]}")
    if isinstance(exc, AlreadyExistsError | PreconditionError):
        return ObjectConflict(f"{action}: {first_line[:300]}")
    status = _CLIENT_ERROR_STATUS.search(str(exc))
    if status is not None and status.group(1) not in _RETRYABLE_CLIENT_STATUSES:
        # The provider refused the request itself (too many headers, a bad argument...):
        # the client's mistake, which retrying cannot fix; never an outage.
        return ObjectRejected(f"{action}: the storage refused the request ({status.group(1)})")
    return StorageUnavailable(f"{action}: {first_line[:300]}")


class ObstoreStorage:
    def __init__(
        self,
        store: ObstoreStore,
        signer: ObstoreStore,
        settings: StorageSettings,
        description: str,
    ) -> None:
        self._store = store
        self._signer = signer
        self._part_size = settings.storage_part_size_bytes
        self._concurrency = settings.storage_upload_concurrency
        self._description = description
        self._abort_wait_seconds = settings.storage_timeout_seconds
        # Uploads of cancelled requests, still aborting their multipart upload.
        self._aborting: set[asyncio.Future[Any]] = set()

    @property
    def description(self) -> str:
        return self._description

    async def put(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        validate_key(key)
        attributes: dict[str, str] = {"Content-Type": content_type}
        attributes.update(validate_metadata(metadata))
        stream = StoppableStream(chunks)
        upload = asyncio.ensure_future(
            obstore.put_async(
                self._store,
                key,
                stream,
                attributes=attributes,
                chunk_size=self._part_size,
                max_concurrency=self._concurrency,
            )
        )
        try:
            await asyncio.shield(upload)
        except asyncio.CancelledError:
            # Stop the stream, so obstore aborts the multipart upload itself; close() waits.
            stream.stop()
            self._aborting.add(upload)
            upload.add_done_callback(self._aborted)
            raise
        except OBSTORE_ERRORS as exc:
            raise translate(exc, f"put {key}") from exc
        return await self.head(key)

    def _aborted(self, upload: "asyncio.Future[Any]") -> None:
        self._aborting.discard(upload)
        if not upload.cancelled():
            upload.exception()  # retrieved: the abort's error is expected, not worth a warning

    async def get(self, key: str) -> StoredObject:
        validate_key(key)
        try:
            result = await obstore.get_async(self._store, key)
        except OBSTORE_ERRORS as exc:
            raise translate(exc, f"get {key}") from exc
        info = _info(result.meta, result.attributes)
        return StoredObject(info, _chunks(result.stream(min_chunk_size=READ_CHUNK_BYTES), key))

    async def head(self, key: str) -> ObjectInfo:
        validate_key(key)
        try:
            result = await obstore.get_async(self._store, key, options={"head": True})
        except OBSTORE_ERRORS as exc:
            raise translate(exc, f"head {key}") from exc
        return _info(result.meta, result.attributes)

    async def exists(self, key: str) -> bool:
        try:
            await self.head(key)
        except ObjectNotFound:
            return False
        return True

    async def delete(self, key: str) -> None:
        validate_key(key)
        try:
            await obstore.delete_async(self._store, key)
        except (NotFoundError, FileNotFoundError):
            return
        except OBSTORE_ERRORS as exc:
            raise translate(exc, f"delete {key}") from exc

    async def list(self, prefix: str = "", limit: int = 1000) -> list[ObjectInfo]:
        prefix = validate_prefix(prefix)
        found: list[ObjectInfo] = []
        try:
            stream = obstore.list(self._store, prefix=prefix or None, chunk_size=min(limit, 1000))
            async for batch in stream:
                found.extend(_info(meta, None) for meta in batch)
                if len(found) >= limit:
                    break
        except OBSTORE_ERRORS as exc:
            raise translate(exc, f"list {prefix!r}") from exc
        return sorted(found, key=lambda info: info.key)[:limit]

    async def signed_url(self, key: str, method: Literal["GET"], expires_in_seconds: int) -> str:
        return await self._sign(key, method, expires_in_seconds)

    async def signed_upload(
        self, key: str, expires_in_seconds: int, *, content_type: str, content_length: int
    ) -> SignedUpload:
        """A SAS URL (Azure): it cannot bind the size or the type of what is put, so nothing
        is enforced (docs/service/storage.md); S3 overrides this with signed headers."""
        url = await self._sign(key, "PUT", expires_in_seconds)
        headers = {"x-ms-blob-type": "BlockBlob", "Content-Type": content_type}
        return SignedUpload(url, headers, frozenset())

    async def _sign(self, key: str, method: Literal["GET", "PUT"], seconds: int) -> str:
        validate_key(key)
        try:
            url: str = await obstore.sign_async(
                self._signer, method, key, timedelta(seconds=seconds)
            )
        except OBSTORE_ERRORS as exc:
            raise translate(exc, f"sign {key}") from exc
        return url

    async def check(self) -> None:
        try:
            async for _batch in obstore.list(self._store, chunk_size=1):
                break
        except OBSTORE_ERRORS as exc:
            raise translate(exc, "list bucket") from exc

    async def close(self) -> None:
        """Wait (bounded) for cancelled uploads to abort; obstore's HTTP client closes with
        the store."""
        if self._aborting:
            await asyncio.wait(set(self._aborting), timeout=self._abort_wait_seconds)


class UploadStopped(Exception):
    """Raised into obstore's read of an upload stream to make it abort the upload."""


class StoppableStream:
    """The chunks of an upload, until ``stop``: then the read in progress (or the next one)
    raises UploadStopped, even while it waits for a client that sends nothing."""

    def __init__(self, chunks: AsyncIterable[bytes]) -> None:
        self._chunks = chunks.__aiter__()
        self._stopped = asyncio.Event()

    def stop(self) -> None:
        self._stopped.set()

    def __aiter__(self) -> "StoppableStream":
        return self

    async def __anext__(self) -> bytes:
        if self._stopped.is_set():
            raise UploadStopped
        step = asyncio.ensure_future(_next_or_none(self._chunks))
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait({step, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if not step.done():
            step.cancel()
            raise UploadStopped
        chunk = step.result()
        if chunk is None:
            raise StopAsyncIteration
        return chunk


async def _next_or_none(chunks: AsyncIterator[bytes]) -> bytes | None:
    # StopAsyncIteration cannot travel through a task: the end of the stream is None.
    try:
        return await anext(chunks)
    except StopAsyncIteration:
        return None


def _info(meta: Any, attributes: Mapping[str, Any] | None) -> ObjectInfo:
    attributes = attributes or {}
    content_type = attributes.get("Content-Type")
    if attributes and content_type is None:
        content_type = DEFAULT_CONTENT_TYPE
    return ObjectInfo(
        key=meta["path"],
        size=meta["size"],
        content_type=content_type,
        etag=meta.get("e_tag"),
        last_modified=meta.get("last_modified"),
        metadata={
            str(name): str(value)
            for name, value in attributes.items()
            if name not in _STANDARD_ATTRIBUTES
        },
    )


async def _chunks(stream: AsyncIterable[Any], key: str) -> AsyncIterator[bytes]:
    try:
        async for chunk in stream:
            yield bytes(chunk)
    except OBSTORE_ERRORS as exc:
        raise translate(exc, f"read {key}") from exc
