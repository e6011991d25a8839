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
from starlette.concurrency import run_in_threadpool

from ..errors import AuthenticationError
from ..feedback_key import hash_api_key
from ..store import Database
from ..store.access.projects import ApiKey, find_key

__all__ = ["ApiKeyDep", "KeyCache", "bearer_token", "require_key"]


class KeyCache:
    """Found keys by hash, each trusted for a short time."""

    def __init__(self, db: Database, ttl: float) -> None:
        self._db, self._ttl = db, ttl
        self._found: dict[str, tuple[ApiKey, float]] = {}
        self._lock = threading.Lock()

    def cached(self, secret: str) -> ApiKey | None:
        """The key if it was found a moment ago (no query), else ``None``."""
        hit = self._found.get(hash_api_key(secret))
        return hit[0] if hit is not None and hit[1] > time.monotonic() else None

    def lookup(self, secret: str) -> ApiKey | None:
        """The live key with this secret: from the cache, or (blocking) from the database."""
        cached = self.cached(secret)
        if cached is not None:
            return cached
        key_hash, now = hash_api_key(secret), time.monotonic()
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


async def require_key(request: Request) -> ApiKey:
    """The API key of the request, or ``AuthenticationError``.

    Async so that the usual case, a key found a moment ago, costs no hop to a worker thread.
    """
    token = bearer_token(request)
    if token is None:
        raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>'")
    cache: KeyCache = request.app.state.keys
    key = cache.cached(token) or await run_in_threadpool(cache.lookup, token)
    if key is None:
        raise AuthenticationError("unknown or revoked API key")
    return key


ApiKeyDep = Annotated[ApiKey, Depends(require_key)]
