"""Session records and cookies.

- IDs are 256 random bits; the cookie carries the ID plus an HMAC of it under ``SECRET_KEY``, so a
  replica with a different key rejects the cookie instead of quietly serving a stranger's session.
- The store key is a hash of the ID: a dump of the store does not hand out live cookies.
- An ID the store does not know is never adopted (no session fixation): the client gets a new one.
- ``rotate()`` (call it on login) moves the data to a new ID and deletes the old record.
- Expiry is enforced by the store's TTL. Sliding sessions are rewritten once past half their
  lifetime, so reading an unchanged session costs one store round trip, not two.
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

from ..store import KeyValueStore

Expiry = Literal["sliding", "absolute"]


class Session(MutableMapping[str, Any]):
    """The data of one session; changes are saved when the response starts."""

    def __init__(
        self,
        session_id: str | None = None,
        data: dict[str, Any] | None = None,
        created_at: float | None = None,
        refresh_at: float = 0.0,
    ) -> None:
        self.id = session_id
        self._data = data or {}
        self.created_at = time.time() if created_at is None else created_at
        self.refresh_at = refresh_at
        self.modified = False
        self.rotate_requested = False
        self.ended = False

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value
        self.modified = True

    def __delitem__(self, key: str) -> None:
        del self._data[key]
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
        """Delete the record and expire the cookie. Call on logout."""
        self._data.clear()
        self.ended = True

    def as_dict(self) -> dict[str, Any]:
        return dict(self._data)


@dataclass(frozen=True)
class CookiePolicy:
    name: str = "session"
    secure: bool = True
    same_site: Literal["lax", "strict"] = "lax"


class SessionManager:
    def __init__(
        self,
        store: KeyValueStore,
        secret_key: str,
        namespace: str,
        ttl_seconds: int,
        expiry: Expiry = "sliding",
        cookie: CookiePolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        # Wall-clock seconds; tests pass a clock they advance instead of sleeping.
        self.clock = clock
        self._key = hashlib.sha256(("session-cookie:" + secret_key).encode()).digest()
        self._prefix = f"{namespace}:session:"
        self.ttl_seconds = ttl_seconds
        self.expiry = expiry
        self.cookie = cookie or CookiePolicy()

    # Cookie value: "<id>.<signature>"
    def _sign(self, session_id: str) -> str:
        mac = hmac.new(self._key, session_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def cookie_value(self, session_id: str) -> str:
        return f"{session_id}.{self._sign(session_id)}"

    def verified_id(self, cookie_value: str) -> str | None:
        session_id, _, signature = cookie_value.partition(".")
        if not session_id or not hmac.compare_digest(signature, self._sign(session_id)):
            return None
        return session_id

    def _record_key(self, session_id: str) -> str:
        return self._prefix + hashlib.sha256(session_id.encode()).hexdigest()

    async def load(self, cookie_value: str | None) -> Session:
        """The session named by the cookie, or a new empty one. One store read at most."""
        session_id = self.verified_id(cookie_value) if cookie_value else None
        if session_id is None:
            return Session()
        raw = await self.store.get(self._record_key(session_id))
        if raw is None:
            return Session()  # expired, ended, or never issued: never adopt the client's ID
        record = json.loads(raw)
        return Session(
            session_id,
            record["data"],
            created_at=record["created_at"],
            refresh_at=record["refresh_at"],
        )

    async def save(self, session: Session) -> list[tuple[bytes, bytes]]:
        """Write what changed; return the Set-Cookie headers for the response."""
        if session.ended:
            if session.id is not None:
                await self.store.delete(self._record_key(session.id))
                return [self._set_cookie("", max_age=0)]
            return []
        now = self.clock()
        stale = self.expiry == "sliding" and session.id is not None and now >= session.refresh_at
        if not (session.modified or stale):
            return []
        if not session and session.id is None:
            return []  # nothing worth a record
        old_id = session.id
        new_id = old_id
        if old_id is None or session.rotate_requested:
            new_id = secrets.token_urlsafe(32)
            session.created_at = now
        if new_id is None:  # unreachable: a session without an ID always gets one above
            raise RuntimeError("session has no ID")
        session.id = new_id
        ttl = self._remaining_ttl(session, now)
        if ttl <= 0:
            await self.store.delete(self._record_key(new_id))
            return [self._set_cookie("", max_age=0)]
        session.refresh_at = now + ttl / 2
        record = {
            "data": session.as_dict(),
            "created_at": session.created_at,
            "refresh_at": session.refresh_at,
        }
        await self.store.set(self._record_key(new_id), json.dumps(record).encode(), ttl)
        if old_id is not None and old_id != new_id:
            await self.store.delete(self._record_key(old_id))
        if old_id == new_id:
            return []  # same cookie as before
        return [self._set_cookie(self.cookie_value(new_id))]

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
