"""Secrets that sign and verify, rotated without refusing what the previous one signed.

A rotation that simply replaces ``SECRET_KEY`` logs every user out, and during the rolling
update old and new replicas refuse each other's cookies. With fallbacks it takes two rolling
updates and nobody notices: first every replica learns the new key as a fallback (it still
signs with the old one), then the new key becomes current and the old one a fallback; once
nothing signed with the old key is still alive, it is dropped. See docs: Configuration.
"""

import hashlib
import hmac
import re
from dataclasses import dataclass

# Keys in one variable or secret file: separated by commas or any whitespace (a file may hold
# one key per line). Generated keys (``secrets.token_urlsafe``) contain neither.
_SEPARATORS = re.compile(r"[\s,]+")


def split_keys(value: str) -> tuple[str, ...]:
    """The keys listed in ``value``, in order, empty entries dropped."""
    return tuple(key for key in _SEPARATORS.split(value) if key)


@dataclass(frozen=True)
class SigningKeys:
    """The current signing secret and the previous ones still accepted.

    Sign with ``current`` only; accept what any of them signed. Each use derives its own keys
    (``for_purpose``), so a signature made for one purpose is never valid for another.
    """

    current: str
    fallbacks: tuple[str, ...] = ()

    def for_purpose(self, purpose: str) -> tuple[bytes, ...]:
        """The derived keys for ``purpose``, the current one first."""
        return tuple(
            hashlib.sha256(f"{purpose}:{key}".encode()).digest()
            for key in (self.current, *self.fallbacks)
        )


def matches_any(given: str, accepted: tuple[str, ...]) -> bool:
    """Whether ``given`` equals one of ``accepted`` (a token and its fallbacks), comparing each
    in constant time so the answer does not leak how much of a token matched."""
    found = False
    for token in accepted:
        found |= hmac.compare_digest(given.encode(), token.encode())
    return found
