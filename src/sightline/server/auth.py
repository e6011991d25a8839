"""API-key authentication for the HTTP API and the gateway.

Keys are looked up by their SHA-256; a process trusts a found key for ``key_cache_seconds``
(1 s by default) so the hot path does no query, and a key revoked in another process stops
working within that time (at once in the process that revoked it).
"""

from __future__ import annotations

import threading
import time
from typing import Annotated

from fastapi import Depends, Request

from ..errors import AuthenticationError
from ..feedback_key import hash_api_key
from ..store import Database
from ..store.projects import ApiKey, find_key

__all__ = ["ApiKeyDep", "KeyCache", "bearer_token", "require_key"]


class KeyCache:
    """Found keys by hash, each trusted for a short time."""

    def __init__(self, db: Database, ttl: float) -> None:
        self._db, self._ttl = db, ttl
        self._found: dict[str, tuple[ApiKey, float]] = {}
        self._lock = threading.Lock()

    def lookup(self, secret: str) -> ApiKey | None:
        key_hash = hash_api_key(secret)
        now = time.monotonic()
        hit = self._found.get(key_hash)
        if hit is not None and hit[1] > now:
            return hit[0]
        with self._db.read() as conn:
            key = find_key(conn, secret)
        with self._lock:
            if key is None:
                self._found.pop(key_hash, None)
            else:
                if len(self._found) > 10_000:
                    self._found.clear()
                self._found[key_hash] = (key, now + self._ttl)
        return key

    def forget(self, key_hash: str) -> None:
        """Stop trusting a key at once (it was just revoked here)."""
        with self._lock:
            self._found.pop(key_hash, None)


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def require_key(request: Request) -> ApiKey:
    """The API key of the request, or ``AuthenticationError``."""
    token = bearer_token(request)
    if token is None:
        raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>'")
    cache: KeyCache = request.app.state.keys
    key = cache.lookup(token)
    if key is None:
        raise AuthenticationError("unknown or revoked API key")
    return key


ApiKeyDep = Annotated[ApiKey, Depends(require_key)]
