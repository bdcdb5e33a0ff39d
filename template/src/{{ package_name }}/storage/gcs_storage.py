"""Google Cloud Storage through google-cloud-storage, Google's own client.

The client is synchronous: every call runs in a worker thread (anyio), so the event loop never
blocks. Uploads are resumable uploads sent in parts of ``STORAGE_PART_SIZE_BYTES`` (rounded to
the 256 KiB GCS requires), reads are ranged requests of the same size, so memory stays bounded.

Credentials: GOOGLE_APPLICATION_CREDENTIALS (the path of a service account key file, typically a
mounted secret), else Application Default Credentials (GKE workload identity, the metadata
server). Signed URLs are signed with the key file's private key, or, without one, through the
IAM signBlob API (the identity needs ``iam.serviceAccounts.signBlob`` on itself).
STORAGE_ENDPOINT_URL is for an emulator (gcp-storage-emulator, fake-gcs-server): requests to it
carry no credentials.
"""

import functools
import itertools
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

import google.auth
import google.auth.credentials
import google.auth.exceptions
import requests
from anyio import sleep, to_thread
from google.api_core import exceptions as api_exceptions
from google.auth.credentials import AnonymousCredentials
from google.auth.transport.requests import Request as AuthRequest
from google.cloud import storage
from google.cloud.storage.fileio import BlobReader, BlobWriter
from google.oauth2 import service_account

from ..config import ConfigError, EnvironmentSettings
from ..security.keys import SigningKeys
from . import (
    CONTENT_LENGTH,
    CONTENT_TYPE,
    DEFAULT_CONTENT_TYPE,
    ObjectConflict,
    ObjectInfo,
    ObjectNotFound,
    ObjectRejected,
    SignedMethod,
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

T = TypeVar("T")
GCS_CHUNK_MULTIPLE = 256 * 1024
# Hand the upload thread about this much at a time, not every small request chunk.
UPLOAD_BATCH_BYTES = 1024 * 1024
DEFAULT_API_ENDPOINT = "https://storage.googleapis.com"
_TRANSIENT = (
    api_exceptions.ServerError,
    api_exceptions.TooManyRequests,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    google.auth.exceptions.TransportError,
)

# 4xx statuses that mean "try again", not "the request is wrong".
_RETRYABLE_CLIENT_CODES = frozenset({408, 425, 429})


class GcsCredentials(EnvironmentSettings):
    # Path of a service account key file (JSON); unset: Application Default Credentials.
    google_application_credentials: Path | None = None
    # Project for the client; unset: the key file's or the environment's project.
    google_cloud_project: str | None = None


def translate(exc: Exception, action: str) -> StorageError:
    if isinstance(exc, api_exceptions.NotFound):
        return ObjectNotFound(f"{action}: not found")
    if isinstance(exc, api_exceptions.Forbidden | api_exceptions.Unauthorized):
        return StorageForbidden(f"{action}: the storage refused the service's credentials")
    if isinstance(exc, google.auth.exceptions.RefreshError):
        return StorageForbidden(f"{action}: could not obtain credentials: {exc}"[:300])
    if isinstance(exc, api_exceptions.Conflict | api_exceptions.PreconditionFailed):
        return ObjectConflict(f"{action}: {exc}"[:300])
    if isinstance(exc, api_exceptions.ClientError) and exc.code not in _RETRYABLE_CLIENT_CODES:
        # The provider refused the request itself: the client's mistake, never an outage.
        return ObjectRejected(f"{action}: the storage refused the request ({exc.code})")
    return StorageUnavailable(f"{action}: {type(exc).__name__}: {exc}"[:300])


def part_size(settings: StorageSettings) -> int:
    size = settings.storage_part_size_bytes
    return max(GCS_CHUNK_MULTIPLE, size - size % GCS_CHUNK_MULTIPLE)


class GcsStorage:
    def __init__(
        self,
        client: storage.Client,
        settings: StorageSettings,
        signing_credentials: google.auth.credentials.Credentials | None,
        signing_endpoint: str,
    ) -> None:
        self._client = client
        self._bucket = client.bucket(settings.bucket())
        self._part_size = part_size(settings)
        self._timeout = (
            settings.storage_connect_timeout_seconds,
            settings.storage_timeout_seconds,
        )
        self._retries = settings.storage_retries
        self._signing_credentials = signing_credentials
        self._signing_endpoint = signing_endpoint
        endpoint = settings.storage_endpoint_url or "Google Cloud"
        self._description = f"gs://{settings.bucket()} at {endpoint}"

    @property
    def description(self) -> str:
        return self._description

    async def _call(self, action: str, function: Callable[[], T]) -> T:
        """Run a blocking client call in a worker thread, retrying transient failures."""
        for attempt in range(self._retries + 1):
            try:
                return await to_thread.run_sync(function)
            except _TRANSIENT as exc:
                if attempt == self._retries:
                    raise translate(exc, action) from exc
                await sleep(min(2.0, 0.1 * 2**attempt))
            except (api_exceptions.GoogleAPIError, google.auth.exceptions.GoogleAuthError) as exc:
                raise translate(exc, action) from exc
            except requests.exceptions.RequestException as exc:
                raise translate(exc, action) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def put(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        validate_key(key)
        blob = self._bucket.blob(key, chunk_size=self._part_size)
        blob.metadata = validate_metadata(metadata) or None
        blob.content_type = content_type

        def open_writer() -> BlobWriter:
            writer: BlobWriter = blob.open(
                "wb",
                content_type=content_type,
                ignore_flush=True,
                timeout=self._timeout,
                retry=None,
            )
            return writer

        writer = await self._call(f"put {key}", open_writer)
        try:
            batch = bytearray()
            async for chunk in chunks:
                batch += chunk
                if len(batch) >= UPLOAD_BATCH_BYTES:
                    data, batch = bytes(batch), bytearray()
                    await self._call(f"put {key}", functools.partial(writer.write, data))
            if batch:
                await self._call(f"put {key}", functools.partial(writer.write, bytes(batch)))
        except BaseException:
            # Closing a BlobWriter finalises the upload, and io's finaliser closes it when it is
            # garbage-collected: replace close so an abandoned upload is never finalised and no
            # partial object appears (the unfinished resumable session expires on its own).
            writer.close = _abandon
            raise
        await self._call(f"put {key}", writer.close)
        return await self.head(key)

    async def get(self, key: str) -> StoredObject:
        info_blob = await self._load(key)
        info = _info(info_blob)

        def open_reader() -> BlobReader:
            # Pinned to the generation just read: a concurrent overwrite cannot mix versions.
            blob = self._bucket.blob(key, generation=info_blob.generation)
            reader: BlobReader = blob.open(
                "rb", chunk_size=self._part_size, timeout=self._timeout, retry=None
            )
            return reader

        reader = await self._call(f"get {key}", open_reader)
        return StoredObject(info, self._read(key, reader))

    async def _read(self, key: str, reader: BlobReader) -> AsyncIterator[bytes]:
        try:
            while True:
                data: bytes = await self._call(f"read {key}", lambda: reader.read(self._part_size))
                if not data:
                    return
                yield data
        finally:
            reader.close()

    async def _load(self, key: str) -> storage.Blob:
        validate_key(key)

        def load() -> storage.Blob:
            blob = self._bucket.get_blob(key, timeout=self._timeout, retry=None)
            if blob is None:
                raise api_exceptions.NotFound(f"{key} not found")  # type: ignore[no-untyped-call]
            return blob

        return await self._call(f"head {key}", load)

    async def head(self, key: str) -> ObjectInfo:
        return _info(await self._load(key))

    async def exists(self, key: str) -> bool:
        try:
            await self._load(key)
        except ObjectNotFound:
            return False
        return True

    async def delete(self, key: str) -> None:
        validate_key(key)
        try:
            await self._call(
                f"delete {key}",
                lambda: self._bucket.delete_blob(key, timeout=self._timeout, retry=None),
            )
        except ObjectNotFound:
            return

    async def list(self, prefix: str = "", limit: int = 1000) -> list[ObjectInfo]:
        prefix = validate_prefix(prefix)

        def list_blobs() -> list[storage.Blob]:
            blobs = self._client.list_blobs(
                self._bucket,
                prefix=f"{prefix}/" if prefix else None,
                max_results=limit,
                timeout=self._timeout,
                retry=None,
            )
            return list(itertools.islice(blobs, limit))

        blobs = await self._call(f"list {prefix!r}", list_blobs)
        # Slice as well: not every server (the emulator, for one) honours max_results.
        return sorted((_info(blob) for blob in blobs), key=lambda info: info.key)[:limit]

    async def signed_url(self, key: str, method: Literal["GET"], expires_in_seconds: int) -> str:
        return await self._sign(key, method, expires_in_seconds)

    async def signed_upload(
        self, key: str, expires_in_seconds: int, *, content_type: str, content_length: int
    ) -> SignedUpload:
        """A V4 signed PUT whose signature covers Content-Type and
        ``x-goog-content-length-range``: GCS refuses another type or size."""
        headers = {
            "Content-Type": content_type,
            "x-goog-content-length-range": f"{content_length},{content_length}",
        }
        url = await self._sign(key, "PUT", expires_in_seconds, headers)
        return SignedUpload(url, headers, frozenset({CONTENT_TYPE, CONTENT_LENGTH}))

    async def _sign(
        self,
        key: str,
        method: SignedMethod,
        expires_in_seconds: int,
        headers: dict[str, str] | None = None,
    ) -> str:
        validate_key(key)
        credentials = self._signing_credentials
        if credentials is None:
            raise StorageForbidden(
                "signed URLs need a service account key (GOOGLE_APPLICATION_CREDENTIALS) or a "
                "workload identity allowed to sign (iam.serviceAccounts.signBlob)"
            )
        signing: dict[str, Any]
        if isinstance(credentials, google.auth.credentials.Signing):
            signing = {"credentials": credentials}
        else:
            # No private key (workload identity): sign through the IAM API with a fresh token.
            def refreshed() -> google.auth.credentials.Credentials:
                credentials.refresh(AuthRequest())  # type: ignore[no-untyped-call]
                return credentials

            fresh = await self._call("refresh credentials", refreshed)
            signing = {
                "service_account_email": getattr(fresh, "service_account_email", None),
                "access_token": fresh.token,
            }
        headers = dict(headers or {})
        content_type = headers.pop("Content-Type", None)
        blob = self._bucket.blob(key)
        url: str = blob.generate_signed_url(
            version="v4",
            expiration=timedelta(seconds=expires_in_seconds),
            method=method,
            content_type=content_type,
            headers=headers or None,
            api_access_endpoint=self._signing_endpoint,
            **signing,
        )
        return url

    async def check(self) -> None:
        def first_object() -> None:
            list(self._client.list_blobs(self._bucket, max_results=1, timeout=self._timeout))

        await self._call("list bucket", first_object)

    async def close(self) -> None:
        await to_thread.run_sync(self._client.close)


def _abandon() -> None:
    """Stands in for BlobWriter.close on an upload that failed."""


def _info(blob: storage.Blob) -> ObjectInfo:
    return ObjectInfo(
        key=blob.name or "",
        size=blob.size or 0,
        content_type=blob.content_type or DEFAULT_CONTENT_TYPE,
        etag=blob.etag,
        last_modified=blob.updated,
        metadata=dict(blob.metadata or {}),
    )


def _key_file_credentials(key_file: Path) -> google.auth.credentials.Credentials:
    try:
        key: google.auth.credentials.Credentials = (
            service_account.Credentials.from_service_account_file(str(key_file))  # type: ignore[no-untyped-call]
        )
    except (OSError, ValueError) as exc:
        message = f"GOOGLE_APPLICATION_CREDENTIALS: cannot read a service account key: {exc}"
        raise ConfigError([message[:300]]) from None
    return key


def credential_problems(settings: StorageSettings) -> list[str]:
    """Checked with every other setting at start (``StorageSettings.load``): a key file that is
    named must be readable. (Without one, the platform's identity is looked up when opening.)"""
    key_file = GcsCredentials.from_environment().google_application_credentials
    if key_file is None:
        return []
    try:
        _key_file_credentials(key_file)
    except ConfigError as exc:
        return exc.problems
    return []


def open_storage(settings: StorageSettings, signing_keys: SigningKeys) -> GcsStorage:
    credentials = GcsCredentials.from_environment()
    key_file = credentials.google_application_credentials
    signing: google.auth.credentials.Credentials | None = None
    project = credentials.google_cloud_project
    if key_file is not None:
        signing = _key_file_credentials(key_file)
        project = project or getattr(signing, "project_id", None)
    endpoint = settings.storage_endpoint_url
    if endpoint is not None:
        client = storage.Client(
            project=project or "emulator",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": endpoint},
        )
    elif signing is not None:
        client = storage.Client(project=project, credentials=signing)
    else:
        try:
            default_credentials, default_project = google.auth.default()
        except google.auth.exceptions.DefaultCredentialsError:
            raise ConfigError(
                [
                    "GOOGLE_APPLICATION_CREDENTIALS: no credentials found (set it to a service "
                    "account key file, or run with a workload identity)"
                ]
            ) from None
        signing = default_credentials
        client = storage.Client(project=project or default_project, credentials=default_credentials)
    public = settings.storage_public_endpoint_url or endpoint or DEFAULT_API_ENDPOINT
    return GcsStorage(client, settings, signing, public.rstrip("/"))
