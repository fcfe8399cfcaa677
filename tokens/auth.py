"""Who may get a token: API keys (constant-time) and the browser Origin allowlist. Pure."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit


class ApiKeys:
    """Server-to-server keys, kept as SHA-256 digests and compared in constant time."""

    def __init__(self, keys: tuple[str, ...] | list[str]) -> None:
        self._digests = tuple(hashlib.sha256(k.encode()).digest() for k in keys)

    def __bool__(self) -> bool:
        return bool(self._digests)

    def match(self, candidate: str) -> int | None:
        """Index of the matching key (safe to log), or None.

        Hashing first gives equal-length inputs, and every key is compared so the time taken
        does not reveal which one (if any) matched.
        """
        digest = hashlib.sha256(candidate.encode()).digest()
        found: int | None = None
        for index, known in enumerate(self._digests):
            if hmac.compare_digest(digest, known) and found is None:
                found = index
        return found


def parse_bearer(authorization: str | None) -> str | None:
    """The credentials of an ``Authorization: Bearer <key>`` header; "" when malformed."""
    if authorization is None:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return ""
    return credentials.strip()


def origin_allowed(origin: str | None, allowed: list[str], host: str | None) -> bool:
    """No Origin (a backend, curl) or a listed one or our own host (the bundled demo page)."""
    if origin is None:
        return True
    origin = origin.rstrip("/")
    if "*" in allowed or origin in allowed:
        return True
    if host:
        return urlsplit(origin).netloc.lower() == host.lower()
    return False
