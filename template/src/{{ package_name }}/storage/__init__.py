"""Object storage for files that every replica must see (uploads, generated files).

One small interface, ``ObjectStorage``, with one module per provider:

- ``s3_storage``: S3 and S3-compatible services (AWS, MinIO, R2...), through obstore.
- ``gcs_storage``: Google Cloud Storage, through google-cloud-storage.
- ``azure_storage``: Azure Blob Storage, through obstore.
- ``local_storage``: a directory; the development default, and in production only a declared
  shared (ReadWriteMany) volume.

Only the provider the service was generated with (plus the local directory) is installed;
``open_storage`` picks it from ``StorageSettings``. Every provider raises the same errors:
``ObjectNotFound`` (404), ``StorageForbidden`` (the service's credentials were refused),
``StorageUnavailable`` (the backend cannot be reached or failed), so callers never see a
provider's own exception types.
"""

import importlib
import re
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from .settings import StorageSettings

SignedMethod = Literal["GET", "PUT"]

# Keys are relative paths of safe characters: no "..", no empty or dot segments, no leading "/".
KEY_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$"
MAX_KEY_LENGTH = 512
_KEY = re.compile(KEY_PATTERN)
# User metadata: short lowercase names and printable values, the subset every provider accepts.
_METADATA_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
MAX_METADATA_VALUE_LENGTH = 256
DEFAULT_CONTENT_TYPE = "application/octet-stream"


class StorageError(Exception):
    """Base of every storage error."""


class ObjectNotFound(StorageError):
    """No object under that key."""


class StorageForbidden(StorageError):
    """The backend refused the service's credentials or permissions (a configuration problem)."""


class StorageUnavailable(StorageError):
    """The backend could not be reached, timed out, or failed."""


class InvalidObjectKey(StorageError, ValueError):
    """A key or metadata entry that no provider may be asked to store."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    # None in listings, which do not carry it.
    content_type: str | None
    etag: str | None = None
    last_modified: datetime | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredObject:
    """An object being read: its description and its content as a stream of chunks.

    Iterate ``chunks`` once (the download is not held in memory); ``close`` releases the
    connection when the stream is abandoned early.
    """

    info: ObjectInfo
    chunks: AsyncIterator[bytes]

    async def read_all(self) -> bytes:
        """The whole object in memory: only for small objects."""
        return b"".join([chunk async for chunk in self.chunks])


class ObjectStorage(Protocol):
    """What the service needs of a bucket (or container, or directory)."""

    @property
    def description(self) -> str:
        """Provider and location, for logs (never credentials)."""

    async def put(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Store the stream under ``key``, replacing any object there.

        Memory stays bounded by the part size times the parallel parts, whatever the object's
        size: large objects go up as a multipart (S3, Azure) or resumable (GCS) upload. The
        object appears only once the whole stream was stored; a failed upload leaves nothing.
        """

    async def get(self, key: str) -> StoredObject: ...

    async def head(self, key: str) -> ObjectInfo: ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None:
        """Remove the object; deleting a missing object is not an error."""

    async def list(self, prefix: str = "", limit: int = 1000) -> list[ObjectInfo]:
        """Objects whose key starts with the folder ``prefix`` (whole path segments: ``a/b``
        matches ``a/b/c`` but not ``a/bc``), in key order, at most ``limit`` of them."""

    async def signed_url(
        self,
        key: str,
        method: SignedMethod,
        expires_in_seconds: int,
        content_type: str | None = None,
    ) -> str:
        """A URL that lets its holder GET or PUT this one object until it expires, without
        the service's credentials. It points at the public endpoint when one is configured."""

    async def check(self) -> None:
        """Raise unless the bucket can be used (for readiness)."""

    async def close(self) -> None: ...


def validate_key(key: str) -> str:
    if len(key) > MAX_KEY_LENGTH or not _KEY.match(key):
        raise InvalidObjectKey(
            f"invalid object key {key[:80]!r}: use 1-{MAX_KEY_LENGTH} characters of letters, "
            "digits, '.', '_', '-' in '/'-separated segments (no '..', no leading '/')"
        )
    return key


def validate_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    return validate_key(prefix) if prefix else ""


def validate_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    checked: dict[str, str] = {}
    for name, value in (metadata or {}).items():
        if not _METADATA_NAME.match(name):
            raise InvalidObjectKey(
                f"invalid metadata name {name[:80]!r}: lowercase letters, digits and '-', "
                "starting with a letter, at most 63 characters"
            )
        if len(value) > MAX_METADATA_VALUE_LENGTH or not value.isprintable() or not value.isascii():
            raise InvalidObjectKey(
                f"invalid value of metadata {name!r}: at most {MAX_METADATA_VALUE_LENGTH} "
                "printable ASCII characters"
            )
        checked[name] = value
    return checked


_MODULE_BY_PROVIDER = {
    "s3": "s3_storage",
    "gcs": "gcs_storage",
    "azure": "azure_storage",
    "local": "local_storage",
}


def open_storage(settings: StorageSettings, signing_secret: str) -> ObjectStorage:
    """The storage the settings describe (``settings.backend``: the provider, or ``local``).

    ``signing_secret`` signs the local directory's URLs (the service's SECRET_KEY, the same on
    every replica); cloud providers sign with their own credentials.
    """
    # Only the generated provider's module (and the local one) exists in this service.
    module = importlib.import_module(f".{_MODULE_BY_PROVIDER[settings.backend]}", __name__)
    storage: ObjectStorage = module.open_storage(settings, signing_secret)
    return storage


__all__ = [
    "DEFAULT_CONTENT_TYPE",
    "KEY_PATTERN",
    "InvalidObjectKey",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStorage",
    "SignedMethod",
    "StorageError",
    "StorageForbidden",
    "StorageSettings",
    "StorageUnavailable",
    "StoredObject",
    "open_storage",
    "validate_key",
    "validate_metadata",
    "validate_prefix",
]
