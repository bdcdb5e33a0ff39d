"""Django adapter of the object storage: example routes under /files and the error answers.

- ``PUT /files/objects/{key}``: upload, streamed from the request body to the bucket (never
  held in memory or on disk: ``request_body.py``); larger than STORAGE_MAX_UPLOAD_BYTES -> 413.
  ``Content-Type`` is kept; ``X-Meta-<name>`` headers become the object's metadata.
- ``GET /files/objects/{key}``: download, streamed from the bucket, as an attachment.
- ``DELETE /files/objects/{key}``, ``GET /files?prefix=&limit=``: delete and list.
- ``POST /files/signed-urls``: a URL that lets a browser GET or PUT one object directly; a PUT
  URL is for exactly ``content_length`` bytes of ``content_type``, bound by the signature where
  the provider can (the answer's ``enforced`` says which; docs/service/storage.md).
- ``GET|PUT /files/signed/{key}``: what those URLs point at for the local directory.

Every route but the signed ones needs a logged-in session. Errors: unknown object 404, a key,
metadata or request the storage cannot take 422 (naming the problem), a key that clashes with
another object (a file where a folder is needed) 409, storage unreachable 503 (with Retry-After:
only an outage is 503), credentials refused by the storage 502.
"""

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal, cast

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from pydantic import BaseModel, Field

from ..observability.logs import get_logger
from ..request_limits import RequestBodyTooLarge
from ..storage import (
    DEFAULT_CONTENT_TYPE,
    MAX_KEY_LENGTH,
    InvalidObjectKey,
    ObjectConflict,
    ObjectInfo,
    ObjectNotFound,
    ObjectRejected,
    ObjectStorage,
    StorageForbidden,
    StorageSettings,
    StorageUnavailable,
)
from ..storage import KEY_PATTERN as STORAGE_KEY_PATTERN
from ..storage.local_storage import LocalStorage
from . import api_docs
from .dependencies import login_required, storage, storage_settings
from .errors import HttpError, handles, json_error
from .request_body import ClientDisconnect, streamed_body
from .routing import endpoint
from .validation import json_body, parse

logger = get_logger(__name__)

META_HEADER_PREFIX = "x-meta-"
MEDIA_TYPE_PART = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
CONTENT_TYPE_PATTERN = rf"^{MEDIA_TYPE_PART}/{MEDIA_TYPE_PART}$"
ObjectKey = Annotated[str, Field(pattern=STORAGE_KEY_PATTERN, max_length=MAX_KEY_LENGTH)]

# nginx's status for a request whose client went away: not the service's failure (no 5xx).
CLIENT_CLOSED_REQUEST = 499


class UploadTooLarge(Exception):
    """The request body passed STORAGE_MAX_UPLOAD_BYTES (or the size a signed URL allows)."""


class UploadTooShort(Exception):
    """The request body ended before the size a signed URL was made for."""


class UploadInterrupted(Exception):
    """The upload stopped before its end: the client went away, or shutdown cut it off. The
    storage has discarded what it received (no object, no open multipart upload)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"upload of {key} interrupted: {reason}")
        self.key = key
        self.reason = reason


@handles(ObjectNotFound)
def object_not_found(exc: ObjectNotFound) -> HttpResponse:
    return json_error("no such object", 404)


@handles(StorageUnavailable)
def storage_unavailable(exc: StorageUnavailable) -> HttpResponse:
    logger.warning("storage unavailable", error=str(exc))
    return json_error("storage unavailable", 503, {"Retry-After": "1"})


@handles(StorageForbidden)
def storage_forbidden(exc: StorageForbidden) -> HttpResponse:
    logger.error("storage refused the service's credentials", error=str(exc))
    return json_error("storage refused the service's credentials", 502)


@handles(InvalidObjectKey, ObjectRejected)
def invalid_object(exc: Exception) -> HttpResponse:
    return json_error(str(exc), 422)


@handles(ObjectConflict)
def object_conflict(exc: ObjectConflict) -> HttpResponse:
    return json_error(str(exc), 409)


@handles(UploadInterrupted)
def upload_interrupted(exc: UploadInterrupted) -> HttpResponse:
    # Expected traffic, not a failure of the service: one line, no traceback, and a 499 in the
    # access log and metrics (nobody reads the response).
    logger.info("upload interrupted", key=exc.key, reason=exc.reason)
    return HttpResponse(b"", status=CLIENT_CLOSED_REQUEST, content_type="text/plain")


class ObjectOut(BaseModel):
    key: str
    size: int
    content_type: str | None
    etag: str | None
    last_modified: datetime | None
    metadata: dict[str, str]

    @classmethod
    def of(cls, info: ObjectInfo) -> "ObjectOut":
        return cls(
            key=info.key,
            size=info.size,
            content_type=info.content_type,
            etag=info.etag,
            last_modified=info.last_modified,
            metadata=dict(info.metadata),
        )


class ObjectList(BaseModel):
    items: list[ObjectOut]


class ListQuery(BaseModel):
    prefix: str = Field(default="", max_length=512)
    limit: int = Field(default=100, ge=1, le=1000)


class SignedUrlRequest(BaseModel):
    key: str = Field(pattern=STORAGE_KEY_PATTERN, max_length=512)
    method: Literal["GET", "PUT"] = "GET"
    # At most STORAGE_SIGNED_URL_SECONDS; unset: exactly that.
    expires_in_seconds: int | None = Field(default=None, ge=1)
    # PUT only: the type and exact size of the upload, which the URL binds where it can.
    content_type: str | None = Field(default=None, pattern=CONTENT_TYPE_PATTERN)
    content_length: int | None = Field(default=None, ge=0)


class SignedUrl(BaseModel):
    url: str
    method: Literal["GET", "PUT"]
    expires_at: datetime
    # Send these with the request, exactly (part of the signature where the provider allows).
    headers: dict[str, str] = Field(default_factory=dict)
    # What the storage refuses if the upload differs: content_type, content_length.
    enforced: list[str] = Field(default_factory=list)


class SignedDownloadQuery(BaseModel):
    expires: int = Field(ge=0)
    signature: str = Field(pattern=r"^[0-9a-f]{64}$")
    method: Literal["GET"] = "GET"


class SignedUploadQuery(BaseModel):
    expires: int = Field(ge=0)
    signature: str = Field(pattern=r"^[0-9a-f]{64}$")
    content_type: str = Field(pattern=CONTENT_TYPE_PATTERN)
    content_length: int = Field(ge=0)
    method: Literal["PUT"] = "PUT"


def model_response(model: BaseModel, status: int = 200, **headers: str) -> HttpResponse:
    return HttpResponse(
        model.model_dump_json(), status=status, headers=headers, content_type="application/json"
    )


def object_key(key: str) -> str:
    """The path's key, or a 422 before the storage is asked."""
    return cast(str, parse(ObjectKey, key, "path", "key"))


def query_of(request: HttpRequest) -> dict[str, str]:
    return {name: request.GET[name] for name in request.GET}


def upload_content_type(request: HttpRequest) -> str:
    content_type = request.headers.get("content-type", DEFAULT_CONTENT_TYPE).strip()
    media_type = content_type.split(";", 1)[0].strip()
    if len(content_type) > 255 or not media_type or "/" not in media_type:
        raise HttpError(415, "invalid Content-Type")
    return content_type


def upload_metadata(request: HttpRequest) -> dict[str, str]:
    # Django hands header names over capitalized (X-Meta-Author): metadata names are lowercase.
    return {
        name.lower().removeprefix(META_HEADER_PREFIX): value
        for name, value in request.headers.items()
        if name.lower().startswith(META_HEADER_PREFIX)
    }


def too_large(limit: int) -> HttpError:
    return HttpError(413, f"upload larger than {limit} bytes")


def refuse_declared_size(request: HttpRequest, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)


async def limited(
    chunks: AsyncIterable[bytes], limit: int, exact: bool = False
) -> AsyncIterator[bytes]:
    """The request body, chunk by chunk, stopping with UploadTooLarge past ``limit`` bytes
    (a chunked upload declares no size up front), and with UploadTooShort when ``exact`` and
    the body ends before ``limit``; either way the storage discards the upload."""
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if received > limit:
            raise UploadTooLarge
        if chunk:
            yield chunk
    if exact and received < limit:
        raise UploadTooShort


async def store_upload(
    request: HttpRequest,
    key: str,
    storage: ObjectStorage,
    settings: StorageSettings,
    exact_length: int | None = None,
) -> ObjectInfo:
    """The request body, as it streams in, stored under ``key``."""
    limit = settings.storage_max_upload_bytes if exact_length is None else exact_length
    refuse_declared_size(request, limit)
    content_type, metadata = upload_content_type(request), upload_metadata(request)
    body = limited(streamed_body(request), limit, exact_length is not None)
    try:
        return await storage.put(key, body, content_type=content_type, metadata=metadata)
    except (UploadTooLarge, RequestBodyTooLarge):
        raise too_large(limit) from None
    except UploadTooShort:
        raise HttpError(400, f"upload shorter than the signed {limit} bytes") from None
    except ClientDisconnect:
        raise UploadInterrupted(key, "client disconnected") from None
    except asyncio.CancelledError:
        # Only the shutdown grace period cancels a request. The storage aborts its upload on
        # cancellation; answering (instead of re-raising) keeps a traceback and a 500 out of
        # the logs and metrics for a request the server chose to stop. The cancellation is
        # handled here, and said so: Django's task group would otherwise cancel the request
        # again, after the answer, as one still being cancelled.
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        raise UploadInterrupted(key, "server shutting down") from None
    except (StorageUnavailable, StorageForbidden) as exc:
        # Some clients wrap an exception raised inside the stream they were reading.
        cause = _raised_from(exc, (UploadTooLarge, RequestBodyTooLarge, ClientDisconnect))
        if isinstance(cause, UploadTooLarge | RequestBodyTooLarge):
            raise too_large(limit) from None
        if isinstance(cause, ClientDisconnect):
            raise UploadInterrupted(key, "client disconnected") from None
        raise


def _raised_from(
    exc: BaseException, kinds: tuple[type[BaseException], ...]
) -> BaseException | None:
    """The first exception of ``kinds`` in the chain that led to ``exc``, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kinds):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def download_headers(info: ObjectInfo) -> dict[str, str]:
    headers = {
        "Content-Length": str(info.size),
        # Served as a download, never rendered: an uploaded HTML file cannot run in our origin.
        "Content-Disposition": "attachment",
        "X-Content-Type-Options": "nosniff",
        # As stored: Django would add a charset to a type without one.
        "Content-Type": info.content_type or DEFAULT_CONTENT_TYPE,
    }
    if info.etag:
        headers["ETag"] = info.etag
    return headers


async def download(request: HttpRequest, storage: ObjectStorage, key: str) -> HttpResponseBase:
    if request.method == "HEAD":  # the headers only: no download is opened
        return HttpResponse(b"", headers=download_headers(await storage.head(key)))
    stored = await storage.get(key)
    # Django closes the chunks (and so the storage's stream) if the client goes away.
    return StreamingHttpResponse(stored.chunks, headers=download_headers(stored.info))


@api_docs.operation(response=ObjectOut, status=201)
@login_required
async def upload_object(request: HttpRequest, key: str) -> HttpResponse:
    key = object_key(key)
    info = await store_upload(request, key, storage(request), storage_settings(request))
    return model_response(ObjectOut.of(info), 201, Location=f"/files/objects/{key}")


@login_required
async def download_object(request: HttpRequest, key: str) -> HttpResponseBase:
    return await download(request, storage(request), object_key(key))


@api_docs.operation(status=204)
@login_required
async def delete_object(request: HttpRequest, key: str) -> HttpResponse:
    await storage(request).delete(object_key(key))
    return HttpResponse(status=204)


@api_docs.operation(response=ObjectList, query={"prefix": str, "limit": int})
@login_required
async def list_objects(request: HttpRequest) -> HttpResponse:
    query = cast(ListQuery, parse(ListQuery, query_of(request), "query"))
    infos = await storage(request).list(query.prefix, query.limit)
    return model_response(ObjectList(items=[ObjectOut.of(info) for info in infos]))


@api_docs.operation(body=SignedUrlRequest, response=SignedUrl)
@login_required
async def create_signed_url(request: HttpRequest) -> HttpResponse:
    body = cast(SignedUrlRequest, await json_body(request, SignedUrlRequest))
    settings = storage_settings(request)
    longest = settings.storage_signed_url_seconds
    seconds = body.expires_in_seconds or longest
    if seconds > longest:
        raise HttpError(
            422, f"expires_in_seconds must be at most {longest} (STORAGE_SIGNED_URL_SECONDS)"
        )
    expires_at = datetime.now(UTC) + timedelta(seconds=seconds)
    if body.method == "GET":
        url = await storage(request).signed_url(body.key, "GET", seconds)
        return model_response(SignedUrl(url=url, method="GET", expires_at=expires_at))
    largest = settings.storage_max_upload_bytes
    if body.content_length is None or body.content_length > largest:
        raise HttpError(
            422,
            f"a PUT URL needs content_length: the upload's exact size in bytes, at most "
            f"{largest} (STORAGE_MAX_UPLOAD_BYTES)",
        )
    upload = await storage(request).signed_upload(
        body.key,
        seconds,
        content_type=body.content_type or DEFAULT_CONTENT_TYPE,
        content_length=body.content_length,
    )
    return model_response(
        SignedUrl(
            url=upload.url,
            method="PUT",
            expires_at=expires_at,
            headers=dict(upload.headers),
            enforced=sorted(upload.enforced),
        )
    )


def verified_local_storage(
    request: HttpRequest,
    key: str,
    method: str,
    expires: int,
    signature: str,
    content_type: str = "",
    content_length: int | None = None,
) -> LocalStorage:
    """The local storage, if it signed this URL; otherwise 403 (or 404 for cloud storage,
    whose signed URLs never point here)."""
    local = storage(request)
    if not isinstance(local, LocalStorage):
        raise HttpError(404, "not found")
    if not local.verify(key, method, expires, signature, content_type, content_length):
        raise HttpError(403, "invalid or expired signature")
    return local


@api_docs.operation(query={"expires": int, "signature": str, "method": Literal["GET"]})
async def signed_download(request: HttpRequest, key: str) -> HttpResponseBase:
    """A download through a signed URL: no session, the signature decides."""
    key = object_key(key)
    query = cast(SignedDownloadQuery, parse(SignedDownloadQuery, query_of(request), "query"))
    local = verified_local_storage(request, key, query.method, query.expires, query.signature)
    return await download(request, local, key)


@api_docs.operation(
    response=ObjectOut,
    status=201,
    query={
        "expires": int,
        "signature": str,
        "content_type": str,
        "content_length": int,
        "method": Literal["PUT"],
    },
)
async def signed_upload(request: HttpRequest, key: str) -> HttpResponse:
    """An upload through a signed URL: exactly the signed type and size, like S3 and GCS."""
    key = object_key(key)
    query = cast(SignedUploadQuery, parse(SignedUploadQuery, query_of(request), "query"))
    local = verified_local_storage(
        request,
        key,
        query.method,
        query.expires,
        query.signature,
        query.content_type,
        query.content_length,
    )
    if upload_content_type(request) != query.content_type:
        raise HttpError(403, f"Content-Type must be {query.content_type}, as signed")
    declared = request.headers.get("content-length")
    if declared is not None and declared != str(query.content_length):
        raise HttpError(403, f"Content-Length must be {query.content_length}, as signed")
    info = await store_upload(request, key, local, storage_settings(request), query.content_length)
    return model_response(ObjectOut.of(info), 201)


urlpatterns = [
    endpoint("files", name="files", get=list_objects),
    endpoint("files/signed-urls", name="signed-urls", post=create_signed_url),
    endpoint(
        "files/objects/<path:key>",
        name="object",
        get=download_object,
        put=upload_object,
        delete=delete_object,
    ),
    endpoint("files/signed/<path:key>", name="signed", get=signed_download, put=signed_upload),
]
