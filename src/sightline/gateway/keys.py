"""API keys: the one bearer parser and the one key lookup, shared by the gateway and the HTTP API.

A process remembers, by the key's SHA-256, what the database said about it for ``ttl`` seconds
(``key_cache_seconds``): a found key is trusted that long, and a refused one is refused that long
without asking again, so a flood of bad keys costs one database read per key per interval. A key
revoked in another process stops working within ``ttl`` (at once in the process that revoked it,
through :meth:`KeyLookup.forget`).

The database is read in a worker thread, never on the event loop, and lookups of one key that
arrive while its read is under way wait for that read instead of starting their own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import AuthenticationError
from ..feedback_key import hash_api_key
from ..store import Database
from ..store.access.projects import ApiKey, find_key

__all__ = ["Caller", "KeyLookup", "bearer_token"]

_MISSING = "missing API key: send 'Authorization: Bearer <Sightline API key>'"


def bearer_token(header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header, or :class:`AuthenticationError`."""
    if header is None:
        raise AuthenticationError(_MISSING)
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError(_MISSING)
    return token


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request: its live API key, and the secret it was sent with (never shown)."""

    key: ApiKey
    secret: str = field(repr=False)


class _Remembered:
    """What the database said about keys, each answer kept until its deadline, at most ``size`` of them.

    A plain dict kept in insertion order: the oldest answer goes first when it is full. Two of these
    (found and refused) keep a flood of made-up keys from pushing the live ones out.
    """

    __slots__ = ("_entries", "_size")

    def __init__(self, size: int) -> None:
        self._entries: dict[str, tuple[ApiKey | None, float]] = {}
        self._size = size

    def get(self, key_hash: str, now: float) -> tuple[ApiKey | None] | None:
        """``(answer,)`` while it is kept, else ``None``."""
        kept = self._entries.get(key_hash)
        if kept is None or kept[1] <= now:
            return None
        return (kept[0],)

    def put(self, key_hash: str, answer: ApiKey | None, until: float) -> None:
        entries = self._entries
        entries.pop(key_hash, None)
        if len(entries) >= self._size:
            del entries[next(iter(entries))]
        entries[key_hash] = (answer, until)

    def pop(self, key_hash: str) -> None:
        self._entries.pop(key_hash, None)


class KeyLookup:
    """The live API key for a secret, remembered (found or refused) for ``ttl`` seconds."""

    def __init__(
        self,
        db: Database,
        ttl: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        size: int = 10_000,
    ) -> None:
        self._db, self._ttl, self._clock = db, ttl, clock
        self._found = _Remembered(size)
        self._refused = _Remembered(size)
        self._reading: dict[str, asyncio.Future[ApiKey | None]] = {}

    async def authenticate(self, authorization: str | None) -> Caller:
        """The caller of a request with this ``Authorization`` header, or :class:`AuthenticationError`."""
        secret = bearer_token(authorization)
        key = await self.lookup(secret)
        if key is None:
            raise AuthenticationError("unknown or revoked API key")
        return Caller(key, secret)

    async def lookup(self, secret: str) -> ApiKey | None:
        """The live key with this secret (``None``: unknown or revoked)."""
        key_hash, now = hash_api_key(secret), self._clock()
        kept = self._found.get(key_hash, now) or self._refused.get(key_hash, now)
        if kept is not None:
            return kept[0]
        reading = self._reading.get(key_hash)
        loop = asyncio.get_running_loop()
        if reading is None or reading.get_loop() is not loop:
            reading = self._reading[key_hash] = loop.create_task(self._read(secret, key_hash))
        # Shielded: a request that is cancelled while it waits does not cancel the others' read.
        return await asyncio.shield(reading)

    def forget(self, key_hash: str) -> None:
        """Ask the database again on the key's next use (it was just revoked or changed here)."""
        self._found.pop(key_hash)
        self._refused.pop(key_hash)
        self._reading.pop(key_hash, None)  # a read under way may predate the change: not kept

    async def _read(self, secret: str, key_hash: str) -> ApiKey | None:
        try:
            key = await asyncio.to_thread(self._find, secret)
        except BaseException:
            self._done(key_hash)
            raise
        if self._done(key_hash) and self._ttl > 0:
            kept = self._found if key is not None else self._refused
            kept.put(key_hash, key, self._clock() + self._ttl)
            (self._refused if key is not None else self._found).pop(key_hash)
        return key

    def _done(self, key_hash: str) -> bool:
        """Ends the read of ``key_hash``; whether its answer may be kept (no :meth:`forget` since)."""
        current = asyncio.current_task()
        if self._reading.get(key_hash) is current:
            del self._reading[key_hash]
            return True
        return False

    def _find(self, secret: str) -> ApiKey | None:
        with self._db.read() as conn:
            return find_key(conn, secret)
