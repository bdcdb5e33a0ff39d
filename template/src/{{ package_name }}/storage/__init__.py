"""Object storage for files that every replica must see (uploads, generated files).

One small interface, ``ObjectStorage``, with one module per provider:

- ``s3_storage``: S3 and S3-compatible services (AWS, MinIO, R2...), through obstore.
- ``gcs_storage``: Google Cloud Storage, through google-cloud-storage.
- ``azure_storage``: Azure Blob Storage, through obstore.
- ``local_storage``: a directory; the development default, and in production only a declared
  shared (ReadWriteMany) volume.

Only the provider the service was generated with (plus the local directory) is installed;
``open_storage`` picks it from ``StorageSettings``. Every provider raises the same errors:
``ObjectNotFound`` (404), ``InvalidObjectKey`` and ``ObjectRejected`` (the request itself is
wrong: a bad key or metadata, something the provider refuses as invalid), ``ObjectConflict`` (the
key clashes with another object, e.g. a file where a folder is needed), ``StorageForbidden`` (the
service's credentials were refused), ``StorageUnavailable`` (the backend cannot be reached or
failed: the only one that means "try again later"), so callers never see a provider's own
exception types.
"""

import importlib
import re
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from ..security.keys import SigningKeys
from .settings import StorageSettings

SignedMethod = Literal["GET", "PUT"]
# What a signed upload URL can bind, for SignedUpload.enforced.
CONTENT_TYPE = "content_type"
CONTENT_LENGTH = "content_length"

# Keys are relative paths of safe characters: no "..", no empty or dot segments, no leading "/".
KEY_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$"
MAX_KEY_LENGTH = 512
# A segment is a file name on a local volume (NAME_MAX is 255 bytes); Azure allows 254 segments.
MAX_SEGMENT_LENGTH = 255
MAX_SEGMENTS = 254
_KEY = re.compile(KEY_PATTERN)
# User metadata: short lowercase names and printable values, the subset every provider accepts.
_METADATA_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
MAX_METADATA_VALUE_LENGTH = 256
# S3 allows 2 KiB of user metadata in all (names and values); keep every provider under it.
MAX_METADATA_ENTRIES = 32
MAX_METADATA_BYTES = 2048
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


class ObjectRejected(StorageError):
    """The backend refused the request as invalid (a 4xx of its own): the client's mistake."""


class ObjectConflict(StorageError):
    """The key clashes with another object: a file where a folder is needed, or the reverse."""


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


@dataclass(frozen=True)
class SignedUpload:
    """A URL that lets its holder PUT one object, and what the storage holds the upload to.

    ``headers`` must be sent with the PUT exactly as given (they are part of the signature where
    the provider supports it). ``enforced`` names what the storage itself refuses when the
    upload differs (``content_type``, ``content_length``): a provider that cannot bind one
    leaves it out, and the caller must not rely on it (docs/service/storage.md).
    """

    url: str
    headers: Mapping[str, str]
    enforced: frozenset[str]


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

    async def signed_url(self, key: str, method: Literal["GET"], expires_in_seconds: int) -> str:
        """A URL that lets its holder GET this one object until it expires, without the
        service's credentials. It points at the public endpoint when one is configured."""

    async def signed_upload(
        self, key: str, expires_in_seconds: int, *, content_type: str, content_length: int
    ) -> SignedUpload:
        """A URL that lets its holder PUT this one object, of exactly ``content_length`` bytes
        of ``content_type``, until it expires; bound by the signature where the provider can."""

    async def check(self) -> None:
        """Raise unless the bucket can be used (for readiness)."""

    async def close(self) -> None: ...


def validate_key(key: str) -> str:
    """The key, if every provider can store it; otherwise InvalidObjectKey naming the problem.

    Checked before any request leaves the service, so a bad key is the client's 4xx and never
    reaches a provider that would answer with an error that looks like an outage.
    """
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidObjectKey(
            f"invalid object key {key[:80]!r}...: longer than {MAX_KEY_LENGTH} characters"
        )
    if not _KEY.match(key):
        raise InvalidObjectKey(
            f"invalid object key {key[:80]!r}: use 1-{MAX_KEY_LENGTH} characters of letters, "
            "digits, '.', '_', '-' in '/'-separated segments (no '..', no leading '/')"
        )
    segments = key.split("/")
    if len(segments) > MAX_SEGMENTS:
        raise InvalidObjectKey(
            f"invalid object key {key[:80]!r}: more than {MAX_SEGMENTS} '/'-separated segments"
        )
    longest = max(segments, key=len)
    if len(longest) > MAX_SEGMENT_LENGTH:
        raise InvalidObjectKey(
            f"invalid object key {key[:80]!r}: segment {longest[:40]!r}... is longer than "
            f"{MAX_SEGMENT_LENGTH} characters"
        )
    return key


def validate_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    return validate_key(prefix) if prefix else ""


def validate_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """The metadata, if every provider can store it; otherwise InvalidObjectKey naming why."""
    metadata = metadata or {}
    if len(metadata) > MAX_METADATA_ENTRIES:
        raise InvalidObjectKey(
            f"too many metadata entries ({len(metadata)}): at most {MAX_METADATA_ENTRIES}"
        )
    total = sum(len(name) + len(value.encode()) for name, value in metadata.items())
    if total > MAX_METADATA_BYTES:
        raise InvalidObjectKey(
            f"metadata too large ({total} bytes of names and values): at most {MAX_METADATA_BYTES}"
        )
    checked: dict[str, str] = {}
    for name, value in metadata.items():
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


def open_storage(settings: StorageSettings, signing_keys: SigningKeys) -> ObjectStorage:
    """The storage the settings describe (``settings.backend``: the provider, or ``local``).

    ``signing_keys`` sign the local directory's URLs (the service's SECRET_KEY, the same on
    every replica, and its fallbacks during a rotation); cloud providers sign with their own
    credentials.
    """
    # Only the generated provider's module (and the local one) exists in this service.
    module = importlib.import_module(f".{_MODULE_BY_PROVIDER[settings.backend]}", __name__)
    storage: ObjectStorage = module.open_storage(settings, signing_keys)
    return storage


__all__ = [
    "DEFAULT_CONTENT_TYPE",
    "KEY_PATTERN",
    "InvalidObjectKey",
    "ObjectConflict",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectRejected",
    "ObjectStorage",
    "SignedMethod",
    "SignedUpload",
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
