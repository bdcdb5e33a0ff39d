"""Session records and cookies.

- IDs are 256 random bits; the cookie carries the ID plus an HMAC of it under ``SECRET_KEY``, so a
  replica with a different key rejects the cookie instead of quietly serving a stranger's session.
  A cookie signed with a key of ``SECRET_KEY_FALLBACKS`` (a rotation rolling out) is accepted and
  signed again with ``SECRET_KEY`` in the response that reads it.
- The store key is a hash of the ID: a dump of the store does not hand out live cookies.
- An ID the store does not know is never adopted (no session fixation): the client gets a new one.
- ``rotate()`` (call it on login) moves the data to a new ID and deletes the old record.
- Expiry is enforced by the store's TTL. Sliding sessions are rewritten once past half their
  lifetime, so reading an unchanged session costs one store round trip, not two.
- A session that is gone stays gone: every rewrite is a compare-and-set against the record as this
  request loaded it, so a request that started before a logout, a rotation or the expiry cannot
  write the record back. A change that meets a concurrent change of a live session is applied
  again on the newer record; a refresh that meets one is skipped (the other write refreshed it).
"""

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

from ..observability.logs import get_logger
from ..security.keys import SigningKeys
from ..store import KeyValueStore

logger = get_logger(__name__)

Expiry = Literal["sliding", "absolute"]

# A change meeting concurrent changes is re-applied this many times before it is given up.
MAX_WRITE_ATTEMPTS = 5
_REMOVED = object()  # marks a key this request deleted


class Session(MutableMapping[str, Any]):
    """The data of one session; changes are saved when the response starts."""

    def __init__(
        self,
        session_id: str | None = None,
        data: dict[str, Any] | None = None,
        created_at: float | None = None,
        refresh_at: float = 0.0,
        version: bytes | None = None,
    ) -> None:
        self.id = session_id
        self._data = data or {}
        # The record as loaded: the compare-and-set of the next write expects exactly this.
        self.version = version
        self._changes: dict[str, Any] = {}
        self.created_at = time.time() if created_at is None else created_at
        self.refresh_at = refresh_at
        self.modified = False
        self.rotate_requested = False
        self.ended = False
        # The cookie was signed with a fallback key: send it again signed with the current one.
        self.resign_cookie = False

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value
        self._changes[key] = value
        self.modified = True

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        self._changes[key] = _REMOVED
        self.modified = True

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def rotate(self) -> None:
        """Give the session a new ID when saved, deleting the old record. Call on login."""
        self.rotate_requested = True
        self.modified = True

    def end(self) -> None:
        """Delete the record and expire the cookie. Call on logout. Data set afterwards is
        saved as a new session, under a new ID."""
        self._data.clear()
        self.ended = True

    def as_dict(self) -> dict[str, Any]:
        return dict(self._data)

    def reapply_on(self, newer: dict[str, Any]) -> None:
        """Take ``newer`` (another request's write) as the base and apply this request's changes."""
        data = dict(newer)
        for key, value in self._changes.items():
            if value is _REMOVED:
                data.pop(key, None)
            else:
                data[key] = value
        self._data = data


@dataclass(frozen=True)
class CookiePolicy:
    name: str = "session"
    secure: bool = True
    same_site: Literal["lax", "strict"] = "lax"


class SessionManager:
    def __init__(
        self,
        store: KeyValueStore,
        keys: SigningKeys,
        namespace: str,
        ttl_seconds: int,
        expiry: Expiry = "sliding",
        cookie: CookiePolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        # Wall-clock seconds; tests pass a clock they advance instead of sleeping.
        self.clock = clock
        self._keys = keys.for_purpose("session-cookie")
        self._prefix = f"{namespace}:session:"
        self.ttl_seconds = ttl_seconds
        self.expiry = expiry
        self.cookie = cookie or CookiePolicy()

    # Cookie value: "<id>.<signature>"
    @staticmethod
    def _sign(key: bytes, session_id: str) -> str:
        mac = hmac.new(key, session_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def cookie_value(self, session_id: str) -> str:
        return f"{session_id}.{self._sign(self._keys[0], session_id)}"

    def _verify(self, cookie_value: str) -> tuple[str, bool] | None:
        """The ID a cookie carries and whether the current key signed it; None if no key did."""
        session_id, _, signature = cookie_value.partition(".")
        if not session_id:
            return None
        for index, key in enumerate(self._keys):
            if hmac.compare_digest(signature, self._sign(key, session_id)):
                return session_id, index == 0
        return None

    def verified_id(self, cookie_value: str) -> str | None:
        verified = self._verify(cookie_value)
        return verified[0] if verified else None

    def _record_key(self, session_id: str) -> str:
        return self._prefix + hashlib.sha256(session_id.encode()).hexdigest()

    async def load(self, cookie_value: str | None) -> Session:
        """The session named by the cookie, or a new empty one. One store read at most."""
        verified = self._verify(cookie_value) if cookie_value else None
        if verified is None:
            return Session()
        session_id, current_key = verified
        raw = await self.store.get(self._record_key(session_id))
        if raw is None:
            return Session()  # expired, ended, or never issued: never adopt the client's ID
        record = json.loads(raw)
        session = Session(
            session_id,
            record["data"],
            created_at=record["created_at"],
            refresh_at=record["refresh_at"],
            version=raw,
        )
        session.resign_cookie = not current_key
        return session

    async def save(self, session: Session) -> list[tuple[bytes, bytes]]:
        """Write what changed; return the Set-Cookie headers for the response."""
        headers = await self._save(session)
        if not headers and session.resign_cookie and session.id is not None and not session.ended:
            headers = [self._set_cookie(self.cookie_value(session.id))]
        return headers

    async def _save(self, session: Session) -> list[tuple[bytes, bytes]]:
        if session.ended:
            if session.id is not None:
                await self.store.delete(self._record_key(session.id))
            if session:
                # Written to after it ended (a login that replaced another user's session):
                # the data starts a new session under a new ID.
                session.id = None
                return await self._save_new_id(session, self.clock())
            return [self._set_cookie("", max_age=0)] if session.id is not None else []
        now = self.clock()
        stale = self.expiry == "sliding" and session.id is not None and now >= session.refresh_at
        if not (session.modified or stale):
            return []
        if not session and session.id is None:
            return []  # nothing worth a record
        if session.id is None or session.rotate_requested:
            return await self._save_new_id(session, now)
        return await self._rewrite(session, session.id, now)

    async def _save_new_id(self, session: Session, now: float) -> list[tuple[bytes, bytes]]:
        """A new session, or a rotation: the old record must still exist to be carried over."""
        old_id = session.id
        if old_id is not None and not await self.store.remove(self._record_key(old_id)):
            # Ended (logout, another rotation, expiry) after this request loaded it: the data
            # goes nowhere and the client's cookie names a session that no longer exists.
            logger.info("session write dropped: the session ended meanwhile")
            return []
        new_id = secrets.token_urlsafe(32)
        session.id = new_id
        session.created_at = now
        ttl = self._remaining_ttl(session, now)
        session.refresh_at = now + ttl / 2
        # A fresh 256-bit ID: no other request can know it yet, so a plain write is safe.
        await self.store.set(self._record_key(new_id), self._encode(session), ttl)
        return [self._set_cookie(self.cookie_value(new_id))]

    async def _rewrite(
        self, session: Session, session_id: str, now: float
    ) -> list[tuple[bytes, bytes]]:
        """Change or refresh an existing record, only while it is the one this request saw."""
        key = self._record_key(session_id)
        expected = session.version
        for _ in range(MAX_WRITE_ATTEMPTS):
            ttl = self._remaining_ttl(session, now)
            if ttl <= 0:
                await self.store.delete(key)
                return [self._set_cookie("", max_age=0)]
            refresh_at = now + ttl / 2
            record = self._encode(session, refresh_at)
            if expected is not None and await self.store.compare_and_set(
                key, expected, record, ttl
            ):
                session.refresh_at = refresh_at
                session.version = record
                return []  # same cookie as before
            current = await self.store.get(key)
            if current is None:
                logger.info("session write dropped: the session ended meanwhile")
                return []
            if not session.modified:
                return []  # only a refresh, and another request has just rewritten the record
            newer = json.loads(current)
            session.reapply_on(newer["data"])
            session.created_at = newer["created_at"]
            expected = current
        logger.warning(
            "session write dropped: the record kept changing", attempts=MAX_WRITE_ATTEMPTS
        )
        return []

    def _encode(self, session: Session, refresh_at: float | None = None) -> bytes:
        record = {
            "data": session.as_dict(),
            "created_at": session.created_at,
            "refresh_at": session.refresh_at if refresh_at is None else refresh_at,
        }
        return json.dumps(record).encode()

    def _remaining_ttl(self, session: Session, now: float) -> int:
        if self.expiry == "absolute":
            return int(session.created_at + self.ttl_seconds - now)
        return self.ttl_seconds

    def _set_cookie(self, value: str, max_age: int | None = None) -> tuple[bytes, bytes]:
        # No Max-Age on a live session: the store's TTL decides when it ends.
        parts = [
            f"{self.cookie.name}={value}",
            "Path=/",
            "HttpOnly",
            f"SameSite={self.cookie.same_site}",
        ]
        if self.cookie.secure:
            parts.append("Secure")
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        return b"set-cookie", "; ".join(parts).encode("latin-1")
