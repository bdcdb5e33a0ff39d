"""A directory as object storage: the development default, and a shared volume in production.

Production accepts it only when STORAGE_LOCAL_SHARED=true declares the directory a volume every
replica mounts (a ReadWriteMany claim); a directory of one replica's own would hide each upload
from every other replica.

Layout under the root: objects at their key's path; their content type and metadata in
``.meta/<key>.json``; uploads in progress in ``.uploads/`` (keys never start with a dot, so
neither can collide with an object). An upload is streamed to a temporary file and renamed into
place once complete, so readers never see half an object.

Signed URLs point at this service's own ``/files/signed/<key>`` route and carry an HMAC of the
method, key and expiry (and, for an upload, its content type and exact size) made with
SECRET_KEY, which every replica shares; the route refuses an upload of another type or size.
"""

import errno
import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlencode

from anyio import open_file, to_thread

from ..security.keys import SigningKeys
from . import (
    CONTENT_LENGTH,
    CONTENT_TYPE,
    DEFAULT_CONTENT_TYPE,
    InvalidObjectKey,
    ObjectConflict,
    ObjectInfo,
    ObjectNotFound,
    SignedMethod,
    SignedUpload,
    StorageUnavailable,
    StoredObject,
    validate_key,
    validate_metadata,
    validate_prefix,
)
from .settings import StorageSettings

META_DIR = ".meta"
UPLOAD_DIR = ".uploads"
READ_CHUNK_BYTES = 256 * 1024
SIGNED_ROUTE = "/files/signed/"
# A key that needs a folder where a file is (or the reverse): the client's conflict, not an outage.
_CONFLICT_ERRNOS = frozenset({errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENOTEMPTY})


def translate(exc: OSError, action: str) -> Exception:
    """The provider-neutral error for a file system error."""
    if exc.errno in _CONFLICT_ERRNOS:
        return ObjectConflict(
            f"{action}: the key clashes with an existing object (a file cannot also be a folder)"
        )
    if exc.errno == errno.ENAMETOOLONG:
        return InvalidObjectKey(f"{action}: the key is too long for the storage volume")
    return StorageUnavailable(f"{action}: {exc}")


class LocalStorage:
    def __init__(self, root: Path, signing_keys: SigningKeys, public_base_url: str) -> None:
        self._root = root
        # Signed with the first; URLs signed with a fallback key (before a rotation) still verify.
        self._keys = signing_keys.for_purpose("storage-url")
        self._public_base_url = public_base_url.rstrip("/")

    @property
    def description(self) -> str:
        return f"local directory {self._root}"

    @property
    def root(self) -> Path:
        return self._root

    def _path(self, key: str) -> Path:
        return self._root / validate_key(key)

    def _meta_path(self, key: str) -> Path:
        return self._root / META_DIR / f"{key}.json"

    def _require_root(self, action: str) -> None:
        if not self._root.is_dir():
            raise StorageUnavailable(f"{action}: storage directory {self._root} is missing")

    async def put(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        target = self._path(key)
        checked = validate_metadata(metadata)
        self._require_root(f"put {key}")
        uploads = self._root / UPLOAD_DIR
        temporary = uploads / uuid.uuid4().hex
        try:
            uploads.mkdir(exist_ok=True)
            async with await open_file(temporary, "wb") as file:
                async for chunk in chunks:
                    await file.write(chunk)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir():
                raise IsADirectoryError(errno.EISDIR, "a folder of other objects", str(target))
            meta = {"content_type": content_type, "metadata": checked}
            meta_path = self._meta_path(key)
            meta_path.parent.mkdir(parents=True, exist_ok=True)
            meta_path.write_text(json.dumps(meta), encoding="utf-8")
            os.replace(temporary, target)
        except OSError as exc:
            raise translate(exc, f"put {key}") from exc
        finally:
            temporary.unlink(missing_ok=True)
        return await self.head(key)

    async def get(self, key: str) -> StoredObject:
        info = await self.head(key)
        try:
            file = await open_file(self._path(key), "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(f"get {key}: not found") from None
        except OSError as exc:
            raise translate(exc, f"get {key}") from exc

        async def chunks() -> AsyncIterator[bytes]:
            async with file:
                while data := await file.read(READ_CHUNK_BYTES):
                    yield data

        return StoredObject(info, chunks())

    async def head(self, key: str) -> ObjectInfo:
        path = self._path(key)
        self._require_root(f"head {key}")
        try:
            stat = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            # Nothing under a key whose folder is a file.
            raise ObjectNotFound(f"head {key}: not found") from None
        except OSError as exc:
            raise translate(exc, f"head {key}") from exc
        if not path.is_file():
            raise ObjectNotFound(f"head {key}: not found")
        try:
            meta = json.loads(self._meta_path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        return ObjectInfo(
            key=key,
            size=stat.st_size,
            content_type=meta.get("content_type", DEFAULT_CONTENT_TYPE),
            etag=f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"',
            last_modified=datetime.fromtimestamp(stat.st_mtime, UTC),
            metadata=meta.get("metadata", {}),
        )

    async def exists(self, key: str) -> bool:
        try:
            await self.head(key)
        except ObjectNotFound:
            return False
        return True

    async def delete(self, key: str) -> None:
        path = self._path(key)
        self._require_root(f"delete {key}")
        try:
            path.unlink(missing_ok=True)
            self._meta_path(key).unlink(missing_ok=True)
        except (IsADirectoryError, NotADirectoryError):
            return  # a folder, or a key under a file: no object there to delete
        except OSError as exc:
            raise translate(exc, f"delete {key}") from exc

    async def list(self, prefix: str = "", limit: int = 1000) -> list[ObjectInfo]:
        prefix = validate_prefix(prefix)
        self._require_root(f"list {prefix!r}")
        start = self._root / prefix if prefix else self._root

        def walk() -> list[ObjectInfo]:
            found: list[ObjectInfo] = []
            for directory, subdirectories, files in os.walk(start):
                subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
                for name in files:
                    path = Path(directory) / name
                    key = path.relative_to(self._root).as_posix()
                    if key.startswith("."):
                        continue
                    stat = path.stat()
                    found.append(
                        ObjectInfo(
                            key=key,
                            size=stat.st_size,
                            content_type=None,
                            last_modified=datetime.fromtimestamp(stat.st_mtime, UTC),
                        )
                    )
            return found

        try:
            found = await to_thread.run_sync(walk)
        except OSError as exc:
            raise translate(exc, f"list {prefix!r}") from exc
        return sorted(found, key=lambda info: info.key)[:limit]

    def signature(
        self,
        key: str,
        method: str,
        expires: int,
        content_type: str = "",
        content_length: int | None = None,
    ) -> str:
        return self._signature(self._keys[0], key, method, expires, content_type, content_length)

    @staticmethod
    def _signature(
        secret: bytes,
        key: str,
        method: str,
        expires: int,
        content_type: str,
        content_length: int | None,
    ) -> str:
        length = "" if content_length is None else str(content_length)
        message = f"{method}\n{key}\n{expires}\n{content_type}\n{length}".encode()
        return hmac.new(secret, message, hashlib.sha256).hexdigest()

    def verify(
        self,
        key: str,
        method: str,
        expires: int,
        signature: str,
        content_type: str = "",
        content_length: int | None = None,
    ) -> bool:
        """True for an unexpired signature this service made for this method and key (and
        this content type and size, for an upload).

        Expiry is wall-clock (Unix time), the one clock every replica agrees on.
        """
        if expires < time.time():
            return False
        return any(
            hmac.compare_digest(
                self._signature(secret, key, method, expires, content_type, content_length),
                signature,
            )
            for secret in self._keys
        )

    def _url(
        self,
        key: str,
        method: SignedMethod,
        seconds: int,
        content_type: str = "",
        content_length: int | None = None,
    ) -> str:
        validate_key(key)
        expires = int(time.time()) + seconds
        query: dict[str, str | int] = {"method": method, "expires": expires}
        if content_length is not None:
            query |= {"content_type": content_type, "content_length": content_length}
        query["signature"] = self.signature(key, method, expires, content_type, content_length)
        return f"{self._public_base_url}{SIGNED_ROUTE}{quote(key)}?{urlencode(query)}"

    async def signed_url(self, key: str, method: Literal["GET"], expires_in_seconds: int) -> str:
        return self._url(key, method, expires_in_seconds)

    async def signed_upload(
        self, key: str, expires_in_seconds: int, *, content_type: str, content_length: int
    ) -> SignedUpload:
        """A URL of the service's own signed route, which checks type and size itself."""
        url = self._url(key, "PUT", expires_in_seconds, content_type, content_length)
        headers = {"Content-Type": content_type, "Content-Length": str(content_length)}
        return SignedUpload(url, headers, frozenset({CONTENT_TYPE, CONTENT_LENGTH}))

    async def check(self) -> None:
        self._require_root("check")
        if not os.access(self._root, os.W_OK):
            raise StorageUnavailable(f"storage directory {self._root} is not writable")

    async def close(self) -> None:
        """Nothing to release."""


def open_storage(settings: StorageSettings, signing_keys: SigningKeys) -> LocalStorage:
    root = settings.local_path
    root.mkdir(parents=True, exist_ok=True)
    public = settings.storage_public_endpoint_url or ""
    return LocalStorage(root, signing_keys, public)
