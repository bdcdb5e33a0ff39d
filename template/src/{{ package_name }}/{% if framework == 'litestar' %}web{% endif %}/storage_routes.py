"""Litestar adapter of the object storage: example routes under /files and the error answers.

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
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, delete, get, post, put, status_codes
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.enums import MediaType
from litestar.exceptions import (
    ClientException,
    HTTPException,
    InternalServerException,
    NotFoundException,
    PermissionDeniedException,
)
from litestar.params import FromQuery, JSONBody, PathParameter, QueryParameter
from litestar.plugins import InitPlugin
from litestar.response import Stream
from pydantic import BaseModel, Field

from ..observability.logs import get_logger
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
from .dependencies import StorageDep, StorageSettingsDep, require_login

logger = get_logger(__name__)

META_HEADER_PREFIX = "x-meta-"
MEDIA_TYPE_PART = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
CONTENT_TYPE_PATTERN = rf"^{MEDIA_TYPE_PART}/{MEDIA_TYPE_PART}$"
# Litestar hands a ``{key:path}`` parameter over with its leading "/": the key follows it.
ObjectPath = Annotated[
    str,
    PathParameter(
        pattern="^/" + STORAGE_KEY_PATTERN.removeprefix("^"), max_length=MAX_KEY_LENGTH + 1
    ),
]

# nginx's status for a request whose client went away: not the service's failure (no 5xx).
CLIENT_CLOSED_REQUEST = 499

AnyRequest = Request[Any, Any, State]
ErrorResponse = Response[dict[str, str]]


class UploadTooLarge(Exception):
    """The request body passed STORAGE_MAX_UPLOAD_BYTES (or the size a signed URL allows)."""


class UploadTooShort(Exception):
    """The request body ended before the size a signed URL was made for."""


class ClientDisconnect(Exception):
    """The client went away while its request body was still coming in."""


class UploadInterrupted(Exception):
    """The upload stopped before its end: the client went away, or shutdown cut it off. The
    storage has discarded what it received (no object, no open multipart upload)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"upload of {key} interrupted: {reason}")
        self.key = key
        self.reason = reason


class StoragePlugin(InitPlugin):
    """The storage in ``app.state``, its error answers and the /files routes."""

    def __init__(self, storage: ObjectStorage, settings: StorageSettings) -> None:
        self.storage = storage
        self.settings = settings

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.state["storage"] = self.storage
        app_config.state["storage_settings"] = self.settings
        app_config.exception_handlers.update(
            {
                ObjectNotFound: object_not_found,
                StorageUnavailable: storage_unavailable,
                StorageForbidden: storage_forbidden,
                InvalidObjectKey: invalid_object,
                ObjectRejected: invalid_object,
                ObjectConflict: object_conflict,
                UploadInterrupted: upload_interrupted,
            }
        )
        app_config.route_handlers.extend([FilesController, SignedFilesController])
        return app_config


def object_not_found(request: AnyRequest, exc: Exception) -> ErrorResponse:
    return Response({"detail": "no such object"}, status_code=404)


def storage_unavailable(request: AnyRequest, exc: Exception) -> ErrorResponse:
    logger.warning("storage unavailable", error=str(exc))
    return Response(
        {"detail": "storage unavailable"}, status_code=503, headers={"Retry-After": "1"}
    )


def storage_forbidden(request: AnyRequest, exc: Exception) -> ErrorResponse:
    logger.error("storage refused the service's credentials", error=str(exc))
    return Response({"detail": "storage refused the service's credentials"}, status_code=502)


def invalid_object(request: AnyRequest, exc: Exception) -> ErrorResponse:
    return Response({"detail": str(exc)}, status_code=422)


def object_conflict(request: AnyRequest, exc: Exception) -> ErrorResponse:
    return Response({"detail": str(exc)}, status_code=409)


def upload_interrupted(request: AnyRequest, exc: Exception) -> Response[bytes]:
    # Expected traffic, not a failure of the service: one line, no traceback, and a 499 in the
    # access log and metrics (nobody reads the response).
    if isinstance(exc, UploadInterrupted):
        logger.info("upload interrupted", key=exc.key, reason=exc.reason)
    return Response(b"", status_code=CLIENT_CLOSED_REQUEST, media_type=MediaType.TEXT)


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


def upload_content_type(request: AnyRequest) -> str:
    content_type = request.headers.get("content-type", DEFAULT_CONTENT_TYPE).strip()
    media_type = content_type.split(";", 1)[0].strip()
    if len(content_type) > 255 or not media_type or "/" not in media_type:
        raise HTTPException(
            "invalid Content-Type", status_code=status_codes.HTTP_415_UNSUPPORTED_MEDIA_TYPE
        )
    return content_type


def upload_metadata(request: AnyRequest) -> dict[str, str]:
    return {
        name.removeprefix(META_HEADER_PREFIX): value
        for name, value in request.headers.items()
        if name.startswith(META_HEADER_PREFIX)
    }


def too_large(limit: int) -> HTTPException:
    return HTTPException(
        f"upload larger than {limit} bytes",
        status_code=status_codes.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    )


def refuse_declared_size(request: AnyRequest, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)


async def request_body(request: AnyRequest) -> AsyncIterator[bytes]:
    """The request body as it streams in; ClientDisconnect if the client goes away."""
    try:
        async for chunk in request.stream():
            yield chunk
    except InternalServerException as exc:
        # How Litestar's stream reports an http.disconnect: the client left, nothing failed.
        raise ClientDisconnect from exc


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
    request: AnyRequest,
    storage: ObjectStorage,
    settings: StorageSettings,
    exact_length: int | None = None,
) -> ObjectInfo:
    limit = settings.storage_max_upload_bytes if exact_length is None else exact_length
    refuse_declared_size(request, limit)
    body = limited(request_body(request), limit, exact=exact_length is not None)
    try:
        return await storage.put(
            key,
            body,
            content_type=upload_content_type(request),
            metadata=upload_metadata(request),
        )
    except UploadTooLarge:
        raise too_large(limit) from None
    except UploadTooShort:
        raise ClientException(f"upload shorter than the signed {limit} bytes") from None
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


def download_response(info: ObjectInfo, chunks: AsyncIterator[bytes]) -> Stream:
    headers = {
        "Content-Length": str(info.size),
        # Served as a download, never rendered: an uploaded HTML file cannot run in our origin.
        "Content-Disposition": "attachment",
        "X-Content-Type-Options": "nosniff",
    }
    if info.etag:
        headers["ETag"] = info.etag
    media_type = info.content_type or DEFAULT_CONTENT_TYPE
    if "charset=" in media_type:  # as the header: Litestar would add a second one to text/ types
        headers["Content-Type"] = media_type
    return Stream(chunks, media_type=media_type, headers=headers)


class FilesController(Controller):
    path = "/files"
    tags = ("files",)
    guards = (require_login,)

    @put("/objects/{key:path}", status_code=status_codes.HTTP_201_CREATED)
    async def upload(
        self,
        key: ObjectPath,
        request: AnyRequest,
        storage: StorageDep,
        storage_settings: StorageSettingsDep,
    ) -> Response[ObjectOut]:
        key = key.removeprefix("/")
        info = await store_upload(key, request, storage, storage_settings)
        return Response(
            ObjectOut.of(info),
            status_code=status_codes.HTTP_201_CREATED,
            headers={"Location": f"/files/objects/{key}"},
        )

    @get("/objects/{key:path}")
    async def download(self, key: ObjectPath, storage: StorageDep) -> Stream:
        stored = await storage.get(key.removeprefix("/"))
        return download_response(stored.info, stored.chunks)

    @delete("/objects/{key:path}", status_code=status_codes.HTTP_204_NO_CONTENT)
    async def delete(self, key: ObjectPath, storage: StorageDep) -> None:
        await storage.delete(key.removeprefix("/"))

    @get("")
    async def list_objects(
        self,
        storage: StorageDep,
        prefix: Annotated[str, QueryParameter(max_length=512)] = "",
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> ObjectList:
        infos = await storage.list(prefix, limit)
        return ObjectList(items=[ObjectOut.of(info) for info in infos])

    @post("/signed-urls", status_code=status_codes.HTTP_200_OK)
    async def create_signed_url(
        self,
        data: JSONBody[SignedUrlRequest],
        storage: StorageDep,
        storage_settings: StorageSettingsDep,
    ) -> SignedUrl:
        longest = storage_settings.storage_signed_url_seconds
        seconds = data.expires_in_seconds or longest
        if seconds > longest:
            raise HTTPException(
                f"expires_in_seconds must be at most {longest} (STORAGE_SIGNED_URL_SECONDS)",
                status_code=status_codes.HTTP_422_UNPROCESSABLE_ENTITY,
            )
        expires_at = datetime.now(UTC) + timedelta(seconds=seconds)
        if data.method == "GET":
            url = await storage.signed_url(data.key, "GET", seconds)
            return SignedUrl(url=url, method="GET", expires_at=expires_at)
        largest = storage_settings.storage_max_upload_bytes
        if data.content_length is None or data.content_length > largest:
            raise HTTPException(
                f"a PUT URL needs content_length: the upload's exact size in bytes, at most "
                f"{largest} (STORAGE_MAX_UPLOAD_BYTES)",
                status_code=status_codes.HTTP_422_UNPROCESSABLE_ENTITY,
            )
        upload = await storage.signed_upload(
            data.key,
            seconds,
            content_type=data.content_type or DEFAULT_CONTENT_TYPE,
            content_length=data.content_length,
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
        raise NotFoundException("not found")
    if not storage.verify(key, method, expires, signature, content_type, content_length):
        raise PermissionDeniedException("invalid or expired signature")
    return storage


SignatureQuery = Annotated[str, QueryParameter(pattern=r"^[0-9a-f]{64}$")]
ExpiresQuery = Annotated[int, QueryParameter(ge=0)]


class SignedFilesController(Controller):
    """What signed URLs of the local storage point at: no session, the signature decides."""

    path = "/files/signed"
    tags = ("files",)

    @get("/{key:path}")
    async def signed_download(
        self,
        key: ObjectPath,
        expires: ExpiresQuery,
        signature: SignatureQuery,
        storage: StorageDep,
        method: FromQuery[Literal["GET"]] = "GET",
    ) -> Stream:
        key = key.removeprefix("/")
        local = verified_local_storage(key, method, expires, signature, storage)
        stored = await local.get(key)
        return download_response(stored.info, stored.chunks)

    @put("/{key:path}", status_code=status_codes.HTTP_201_CREATED)
    async def signed_upload(
        self,
        key: ObjectPath,
        expires: ExpiresQuery,
        signature: SignatureQuery,
        content_type: Annotated[str, QueryParameter(pattern=CONTENT_TYPE_PATTERN)],
        content_length: Annotated[int, QueryParameter(ge=0)],
        request: AnyRequest,
        storage: StorageDep,
        storage_settings: StorageSettingsDep,
        method: FromQuery[Literal["PUT"]] = "PUT",
    ) -> ObjectOut:
        """An upload through a signed URL: exactly the signed type and size, like S3 and GCS."""
        key = key.removeprefix("/")
        local = verified_local_storage(
            key, method, expires, signature, storage, content_type, content_length
        )
        if upload_content_type(request) != content_type:
            raise PermissionDeniedException(f"Content-Type must be {content_type}, as signed")
        declared = request.headers.get("content-length")
        if declared is not None and declared != str(content_length):
            raise PermissionDeniedException(f"Content-Length must be {content_length}, as signed")
        info = await store_upload(key, request, local, storage_settings, content_length)
        return ObjectOut.of(info)
