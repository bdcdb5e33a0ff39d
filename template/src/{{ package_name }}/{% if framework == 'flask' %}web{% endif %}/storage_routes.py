"""Flask adapter of the object storage: example routes under /files and the error answers.

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

The views run on the WSGI bridge's threads and the storage on the server's loop (``portal``). An
upload is the storage's own ``put`` awaited through the portal, reading the request body on the
loop straight from the ASGI channel: the view's thread only waits, the body is never gathered,
and a client that goes away is seen as such (``wsgi.input`` would read it as the end of the
body, and store a truncated object). A download hands the storage's chunks to the WSGI server
one by one through ``portal.iterate``, and stops when the client goes away.
"""

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from concurrent.futures import CancelledError
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, NoReturn, cast

from a2wsgi.wsgi import Body
from flask import Blueprint, Flask, Response, abort, jsonify, request
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
from . import api_docs, portal
from .dependencies import login_required, storage, storage_settings
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


class ClientDisconnect(Exception):
    """The client went away while its request body was still coming in."""


class UploadInterrupted(Exception):
    """The upload stopped before its end: the client went away, or shutdown cut it off. The
    storage has discarded what it received (no object, no open multipart upload)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"upload of {key} interrupted: {reason}")
        self.key = key
        self.reason = reason


files = Blueprint("files", __name__, url_prefix="/files")


def install(app: Flask, storage: ObjectStorage, settings: StorageSettings) -> None:
    """The storage in ``app.extensions``, its error answers and the /files routes."""
    app.extensions["storage"] = storage
    app.extensions["storage_settings"] = settings
    app.register_error_handler(ObjectNotFound, object_not_found)
    app.register_error_handler(StorageUnavailable, storage_unavailable)
    app.register_error_handler(StorageForbidden, storage_forbidden)
    app.register_error_handler(InvalidObjectKey, invalid_object)
    app.register_error_handler(ObjectRejected, invalid_object)
    app.register_error_handler(ObjectConflict, object_conflict)
    app.register_error_handler(UploadInterrupted, upload_interrupted)
    app.register_blueprint(files)


def detail(message: str, status: int, headers: Mapping[str, str] | None = None) -> Response:
    """``{"detail": message}``, like every error of the service."""
    response = jsonify({"detail": message})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def object_not_found(exc: Exception) -> Response:
    return detail("no such object", 404)


def storage_unavailable(exc: Exception) -> Response:
    logger.warning("storage unavailable", error=str(exc))
    return detail("storage unavailable", 503, {"Retry-After": "1"})


def storage_forbidden(exc: Exception) -> Response:
    logger.error("storage refused the service's credentials", error=str(exc))
    return detail("storage refused the service's credentials", 502)


def invalid_object(exc: Exception) -> Response:
    return detail(str(exc), 422)


def object_conflict(exc: Exception) -> Response:
    return detail(str(exc), 409)


def upload_interrupted(exc: Exception) -> Response:
    # Expected traffic, not a failure of the service: one line, no traceback, and a 499 in the
    # access log and metrics (nobody reads the response).
    if isinstance(exc, UploadInterrupted):
        logger.info("upload interrupted", key=exc.key, reason=exc.reason)
    return Response(b"", CLIENT_CLOSED_REQUEST, mimetype="text/plain")


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


def json_response(
    model: BaseModel, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        model.model_dump_json(), status, headers=dict(headers or {}), mimetype="application/json"
    )


def object_key(key: str) -> str:
    """The path's key, or a 422 before the storage is asked."""
    return cast(str, parse(ObjectKey, key, "path", "key"))


def upload_content_type() -> str:
    content_type = request.headers.get("content-type", DEFAULT_CONTENT_TYPE).strip()
    media_type = content_type.split(";", 1)[0].strip()
    if len(content_type) > 255 or not media_type or "/" not in media_type:
        abort(415, "invalid Content-Type")
    return content_type


def upload_metadata() -> dict[str, str]:
    # Werkzeug hands header names over capitalized (X-Meta-Author): metadata names are lowercase.
    return {
        name.lower().removeprefix(META_HEADER_PREFIX): value
        for name, value in request.headers.items()
        if name.lower().startswith(META_HEADER_PREFIX)
    }


def too_large(limit: int) -> NoReturn:
    abort(413, f"upload larger than {limit} bytes")


def refuse_declared_size(limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        too_large(limit)


async def request_body(body: Body) -> AsyncIterator[bytes]:
    """The request body as it streams in, read on the server's loop from the ASGI channel
    ``wsgi.input`` (a2wsgi's Body) wraps; ClientDisconnect if the client goes away."""
    if body.buffer:  # read through wsgi.input before: never the case for the upload routes
        yield bytes(body.buffer)
        body.buffer.clear()
    more_body = body.has_more
    while more_body:
        message = cast(Mapping[str, Any], await body.receive())
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        more_body = bool(message.get("more_body", False))
        yield message.get("body", b"")


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


def store_upload(
    key: str,
    storage: ObjectStorage,
    settings: StorageSettings,
    exact_length: int | None = None,
) -> ObjectInfo:
    """The request body stored under ``key``: the storage's ``put`` runs on the server's loop
    and reads the body there, while this thread waits for the outcome."""
    limit = settings.storage_max_upload_bytes if exact_length is None else exact_length
    refuse_declared_size(limit)
    content_type, metadata = upload_content_type(), upload_metadata()
    body = limited(request_body(request.environ["wsgi.input"]), limit, exact_length is not None)
    try:
        return portal.run(storage.put(key, body, content_type=content_type, metadata=metadata))
    except (UploadTooLarge, RequestBodyTooLarge):
        too_large(limit)
    except UploadTooShort:
        abort(400, f"upload shorter than the signed {limit} bytes")
    except ClientDisconnect:
        raise UploadInterrupted(key, "client disconnected") from None
    except CancelledError:
        # Only the shutdown grace period cancels a request: the ASGI entry cancels what the
        # portal awaits for it. The storage aborts its upload on cancellation; answering keeps
        # a traceback and a 500 out of the logs and metrics for a request the server stopped.
        raise UploadInterrupted(key, "server shutting down") from None
    except (StorageUnavailable, StorageForbidden) as exc:
        # Some clients wrap an exception raised inside the stream they were reading.
        cause = _raised_from(exc, (UploadTooLarge, RequestBodyTooLarge, ClientDisconnect))
        if isinstance(cause, UploadTooLarge | RequestBodyTooLarge):
            too_large(limit)
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


def download_response(info: ObjectInfo, chunks: Iterable[bytes]) -> Response:
    headers = {
        "Content-Length": str(info.size),
        # Served as a download, never rendered: an uploaded HTML file cannot run in our origin.
        "Content-Disposition": "attachment",
        "X-Content-Type-Options": "nosniff",
    }
    if info.etag:
        headers["ETag"] = info.etag
    # As stored: Flask would add a charset to text/ types given as a mimetype.
    content_type = info.content_type or DEFAULT_CONTENT_TYPE
    return Response(chunks, headers=headers, content_type=content_type)


async def client_gone(body: Body) -> None:
    """Returns once the client has gone away (``http.disconnect`` on the ASGI channel)."""
    while cast(Mapping[str, Any], await body.receive())["type"] != "http.disconnect":
        pass


async def until_client_gone(chunks: AsyncIterator[bytes], body: Body) -> AsyncIterator[bytes]:
    """The download's chunks, stopping once the client has gone away: the bridge would go on
    sending them to nobody, holding a worker thread and the storage's stream to the end."""
    gone = asyncio.ensure_future(client_gone(body))
    try:
        async for chunk in chunks:
            if gone.done():
                return
            yield chunk
    finally:
        if not gone.cancel():  # over already: retrieve its outcome, never logged as unhandled
            gone.exception()
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


def download(storage: ObjectStorage, key: str) -> Response:
    if request.method == "HEAD":  # the headers only: no download is opened
        return download_response(portal.run(storage.head(key)), ())
    stored = portal.run(storage.get(key))
    chunks = until_client_gone(stored.chunks, request.environ["wsgi.input"])
    return download_response(stored.info, portal.iterate(chunks))


# A key's "//" reaches validation (422) instead of Werkzeug's redirect to another key.
@files.put("/objects/<path:key>", merge_slashes=False)
@api_docs.operation(response=ObjectOut, status=201)
@login_required
def upload_object(key: str) -> Response:
    key = object_key(key)
    info = store_upload(key, storage(), storage_settings())
    return json_response(ObjectOut.of(info), 201, {"Location": f"/files/objects/{key}"})


@files.get("/objects/<path:key>", merge_slashes=False)
@login_required
def download_object(key: str) -> Response:
    return download(storage(), object_key(key))


@files.delete("/objects/<path:key>", merge_slashes=False)
@api_docs.operation(status=204)
@login_required
def delete_object(key: str) -> Response:
    portal.run(storage().delete(object_key(key)))
    return Response(status=204)


@files.get("")
@api_docs.operation(response=ObjectList, query={"prefix": str, "limit": int})
@login_required
def list_objects() -> Response:
    query = cast(ListQuery, parse(ListQuery, request.args.to_dict(), "query"))
    infos = portal.run(storage().list(query.prefix, query.limit))
    return json_response(ObjectList(items=[ObjectOut.of(info) for info in infos]))


@files.post("/signed-urls")
@api_docs.operation(body=SignedUrlRequest, response=SignedUrl)
@login_required
def create_signed_url() -> Response:
    body = cast(SignedUrlRequest, json_body(SignedUrlRequest))
    settings = storage_settings()
    longest = settings.storage_signed_url_seconds
    seconds = body.expires_in_seconds or longest
    if seconds > longest:
        abort(422, f"expires_in_seconds must be at most {longest} (STORAGE_SIGNED_URL_SECONDS)")
    expires_at = datetime.now(UTC) + timedelta(seconds=seconds)
    if body.method == "GET":
        url = portal.run(storage().signed_url(body.key, "GET", seconds))
        return json_response(SignedUrl(url=url, method="GET", expires_at=expires_at))
    largest = settings.storage_max_upload_bytes
    if body.content_length is None or body.content_length > largest:
        abort(
            422,
            f"a PUT URL needs content_length: the upload's exact size in bytes, at most "
            f"{largest} (STORAGE_MAX_UPLOAD_BYTES)",
        )
    upload = portal.run(
        storage().signed_upload(
            body.key,
            seconds,
            content_type=body.content_type or DEFAULT_CONTENT_TYPE,
            content_length=body.content_length,
        )
    )
    return json_response(
        SignedUrl(
            url=upload.url,
            method="PUT",
            expires_at=expires_at,
            headers=dict(upload.headers),
            enforced=sorted(upload.enforced),
        )
    )


def verified_local_storage(
    key: str,
    method: str,
    expires: int,
    signature: str,
    content_type: str = "",
    content_length: int | None = None,
) -> LocalStorage:
    """The local storage, if it signed this URL; otherwise 403 (or 404 for cloud storage,
    whose signed URLs never point here)."""
    local = storage()
    if not isinstance(local, LocalStorage):
        abort(404, "not found")
    if not local.verify(key, method, expires, signature, content_type, content_length):
        abort(403, "invalid or expired signature")
    return local


@files.get("/signed/<path:key>", merge_slashes=False)
@api_docs.operation(query={"expires": int, "signature": str, "method": Literal["GET"]})
def signed_download(key: str) -> Response:
    """A download through a signed URL: no session, the signature decides."""
    key = object_key(key)
    query = cast(SignedDownloadQuery, parse(SignedDownloadQuery, request.args.to_dict(), "query"))
    local = verified_local_storage(key, query.method, query.expires, query.signature)
    return download(local, key)


@files.put("/signed/<path:key>", merge_slashes=False)
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
def signed_upload(key: str) -> Response:
    """An upload through a signed URL: exactly the signed type and size, like S3 and GCS."""
    key = object_key(key)
    query = cast(SignedUploadQuery, parse(SignedUploadQuery, request.args.to_dict(), "query"))
    local = verified_local_storage(
        key,
        query.method,
        query.expires,
        query.signature,
        query.content_type,
        query.content_length,
    )
    if upload_content_type() != query.content_type:
        abort(403, f"Content-Type must be {query.content_type}, as signed")
    declared = request.headers.get("content-length")
    if declared is not None and declared != str(query.content_length):
        abort(403, f"Content-Length must be {query.content_length}, as signed")
    info = store_upload(key, local, storage_settings(), query.content_length)
    return json_response(ObjectOut.of(info), 201)
