"""FastAPI adapter of the object storage: example routes under /files and the error answers.

- ``PUT /files/objects/{key}``: upload, streamed from the request body to the bucket (never
  held in memory or on disk); larger than STORAGE_MAX_UPLOAD_BYTES -> 413. ``Content-Type`` is
  kept; ``X-Meta-<name>`` headers become the object's metadata.
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
from typing import Annotated, Literal

from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    HTTPException,
    Path,
    Query,
    Request,
    Response,
    status,
)
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.requests import ClientDisconnect

from ..observability.logs import get_logger
from ..storage import (
    DEFAULT_CONTENT_TYPE,
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
from .dependencies import StorageDep, StorageSettingsDep, require_login
from .routers import add_router

logger = get_logger(__name__)

META_HEADER_PREFIX = "x-meta-"
MEDIA_TYPE_PART = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
CONTENT_TYPE_PATTERN = rf"^{MEDIA_TYPE_PART}/{MEDIA_TYPE_PART}$"
ObjectKey = Annotated[str, Path(pattern=STORAGE_KEY_PATTERN, max_length=512)]


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


def install(app: FastAPI, storage: ObjectStorage, settings: StorageSettings) -> None:
    app.state.storage = storage
    app.state.storage_settings = settings
    app.add_exception_handler(ObjectNotFound, object_not_found)
    app.add_exception_handler(StorageUnavailable, storage_unavailable)
    app.add_exception_handler(StorageForbidden, storage_forbidden)
    app.add_exception_handler(InvalidObjectKey, invalid_object)
    app.add_exception_handler(ObjectRejected, invalid_object)
    app.add_exception_handler(ObjectConflict, object_conflict)
    app.add_exception_handler(UploadInterrupted, upload_interrupted)
    add_router(app, router)
    add_router(app, signed_router)


async def object_not_found(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": "no such object"}, status_code=404)


async def storage_unavailable(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("storage unavailable", error=str(exc))
    return JSONResponse(
        {"detail": "storage unavailable"}, status_code=503, headers={"Retry-After": "1"}
    )


async def storage_forbidden(request: Request, exc: Exception) -> JSONResponse:
    logger.error("storage refused the service's credentials", error=str(exc))
    return JSONResponse({"detail": "storage refused the service's credentials"}, status_code=502)


async def invalid_object(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=422)


async def object_conflict(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=409)


async def upload_interrupted(request: Request, exc: Exception) -> Response:
    # Expected traffic, not a failure of the service: one line, no traceback, and a 499 in the
    # access log and metrics (nobody reads the response).
    if isinstance(exc, UploadInterrupted):
        logger.info("upload interrupted", key=exc.key, reason=exc.reason)
    return Response(status_code=CLIENT_CLOSED_REQUEST)


router = APIRouter(prefix="/files", tags=["files"], dependencies=[Depends(require_login)])
signed_router = APIRouter(prefix="/files/signed", tags=["files"])


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


def upload_content_type(request: Request) -> str:
    content_type = request.headers.get("content-type", DEFAULT_CONTENT_TYPE).strip()
    media_type = content_type.split(";", 1)[0].strip()
    if len(content_type) > 255 or not media_type or "/" not in media_type:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "invalid Content-Type")
    return content_type


def upload_metadata(request: Request) -> dict[str, str]:
    return {
        name.removeprefix(META_HEADER_PREFIX): value
        for name, value in request.headers.items()
        if name.startswith(META_HEADER_PREFIX)
    }


def refuse_declared_size(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"upload larger than {limit} bytes")


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
    key: str,
    request: Request,
    storage: ObjectStorage,
    settings: StorageSettings,
    exact_length: int | None = None,
) -> ObjectInfo:
    limit = settings.storage_max_upload_bytes if exact_length is None else exact_length
    refuse_declared_size(request, limit)
    body = limited(request.stream(), limit, exact=exact_length is not None)
    try:
        return await storage.put(
            key,
            body,
            content_type=upload_content_type(request),
            metadata=upload_metadata(request),
        )
    except UploadTooLarge:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE, f"upload larger than {limit} bytes"
        ) from None
    except UploadTooShort:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"upload shorter than the signed {limit} bytes"
        ) from None
    except ClientDisconnect:
        raise UploadInterrupted(key, "client disconnected") from None
    except asyncio.CancelledError:
        # Only the shutdown grace period cancels a request. The storage aborts its upload on
        # cancellation; answering (instead of re-raising) keeps a traceback and a 500 out of
        # the logs and metrics for a request the server chose to stop.
        raise UploadInterrupted(key, "server shutting down") from None
    except (StorageUnavailable, StorageForbidden) as exc:
        # Some clients wrap an exception raised inside the stream they were reading.
        cause = _raised_from(exc, (UploadTooLarge, ClientDisconnect))
        if isinstance(cause, UploadTooLarge):
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE, f"upload larger than {limit} bytes"
            ) from None
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


def download_response(info: ObjectInfo, chunks: AsyncIterator[bytes]) -> StreamingResponse:
    headers = {
        "Content-Length": str(info.size),
        # Served as a download, never rendered: an uploaded HTML file cannot run in our origin.
        "Content-Disposition": "attachment",
        "X-Content-Type-Options": "nosniff",
    }
    if info.etag:
        headers["ETag"] = info.etag
    return StreamingResponse(
        chunks, media_type=info.content_type or DEFAULT_CONTENT_TYPE, headers=headers
    )


@router.put("/objects/{key:path}", status_code=status.HTTP_201_CREATED)
async def upload(
    key: ObjectKey,
    request: Request,
    storage: StorageDep,
    settings: StorageSettingsDep,
    response: Response,
) -> ObjectOut:
    info = await store_upload(key, request, storage, settings)
    response.headers["Location"] = f"/files/objects/{key}"
    return ObjectOut.of(info)


@router.get("/objects/{key:path}")
async def download(key: ObjectKey, storage: StorageDep) -> StreamingResponse:
    stored = await storage.get(key)
    return download_response(stored.info, stored.chunks)


@router.delete("/objects/{key:path}", status_code=status.HTTP_204_NO_CONTENT)
async def delete(key: ObjectKey, storage: StorageDep) -> Response:
    await storage.delete(key)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("")
async def list_objects(
    storage: StorageDep,
    prefix: Annotated[str, Query(max_length=512)] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ObjectList:
    infos = await storage.list(prefix, limit)
    return ObjectList(items=[ObjectOut.of(info) for info in infos])


@router.post("/signed-urls")
async def create_signed_url(
    body: SignedUrlRequest, storage: StorageDep, settings: StorageSettingsDep
) -> SignedUrl:
    longest = settings.storage_signed_url_seconds
    seconds = body.expires_in_seconds or longest
    if seconds > longest:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"expires_in_seconds must be at most {longest} (STORAGE_SIGNED_URL_SECONDS)",
        )
    expires_at = datetime.now(UTC) + timedelta(seconds=seconds)
    if body.method == "GET":
        url = await storage.signed_url(body.key, "GET", seconds)
        return SignedUrl(url=url, method="GET", expires_at=expires_at)
    largest = settings.storage_max_upload_bytes
    if body.content_length is None or body.content_length > largest:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"a PUT URL needs content_length: the upload's exact size in bytes, at most "
            f"{largest} (STORAGE_MAX_UPLOAD_BYTES)",
        )
    upload = await storage.signed_upload(
        body.key,
        seconds,
        content_type=body.content_type or DEFAULT_CONTENT_TYPE,
        content_length=body.content_length,
    )
    return SignedUrl(
        url=upload.url,
        method="PUT",
        expires_at=expires_at,
        headers=dict(upload.headers),
        enforced=sorted(upload.enforced),
    )


def verified_local_storage(
    key: str,
    method: str,
    expires: int,
    signature: str,
    storage: ObjectStorage,
    content_type: str = "",
    content_length: int | None = None,
) -> LocalStorage:
    """The local storage, if it signed this URL; otherwise 403 (or 404 for cloud storage,
    whose signed URLs never point here)."""
    if not isinstance(storage, LocalStorage):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")
    if not storage.verify(key, method, expires, signature, content_type, content_length):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid or expired signature")
    return storage


SignatureQuery = Annotated[str, Query(pattern=r"^[0-9a-f]{64}$")]
ExpiresQuery = Annotated[int, Query(ge=0)]


@signed_router.get("/{key:path}")
async def signed_download(
    key: ObjectKey,
    expires: ExpiresQuery,
    signature: SignatureQuery,
    storage: StorageDep,
    method: Literal["GET"] = "GET",
) -> StreamingResponse:
    local = verified_local_storage(key, method, expires, signature, storage)
    stored = await local.get(key)
    return download_response(stored.info, stored.chunks)


@signed_router.put("/{key:path}", status_code=status.HTTP_201_CREATED)
async def signed_upload(
    key: ObjectKey,
    expires: ExpiresQuery,
    signature: SignatureQuery,
    content_type: Annotated[str, Query(pattern=CONTENT_TYPE_PATTERN)],
    content_length: Annotated[int, Query(ge=0)],
    request: Request,
    storage: StorageDep,
    settings: StorageSettingsDep,
    method: Literal["PUT"] = "PUT",
) -> ObjectOut:
    """An upload through a signed URL: exactly the signed type and size, like S3 and GCS."""
    local = verified_local_storage(
        key, method, expires, signature, storage, content_type, content_length
    )
    if upload_content_type(request) != content_type:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"Content-Type must be {content_type}, as signed"
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared != str(content_length):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"Content-Length must be {content_length}, as signed"
        )
    return ObjectOut.of(await store_upload(key, request, local, settings, content_length))
