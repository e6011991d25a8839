"""The response cache: an in-process LRU in front of a layer every server process shares.

The shared layer is the database (table ``gateway_cache``, written through the single writer), or
Redis when ``SIGHTLINE_REDIS_URL`` is set, for several gateway processes on several machines.
A hit in the LRU costs a dict lookup; after ``trust`` seconds an entry is checked against the
shared layer again (in the background, the hit itself still answered from memory), so an entry
renewed (``X-Sightline-Cache: refresh``) in another process is seen here soon after that time.
Entries live ``ttl`` seconds (``SIGHTLINE_CACHE_TTL``; 0 stores nothing). A cache that fails
(Redis down, a locked database) is a miss, never a failed call. Expired rows of the database layer
are deleted by a periodic job (:func:`purge_expired`, kind :data:`PURGE_KIND`), never on a request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from ...store import Database
from ...store.gateway.cache import PurgeExpired, StoreResponse, cached_response
from ...store.jobs import Job

__all__ = ["PURGE_KIND", "ResponseCache", "purge_expired"]

log = logging.getLogger(__name__)

PURGE_KIND = "gateway.cache.purge"


async def purge_expired(job: Job) -> PurgeExpired:
    """The cache purge job's handler: the deletion of the entries expired by now, which the runner
    commits with the job's completion (the number deleted is the job's result)."""
    return PurgeExpired(int(time.time() * 1_000_000))


@dataclass(slots=True)
class _Entry:
    body: bytes
    expires: float  # Unix time
    checked: float  # monotonic time the shared layer last confirmed it


class ResponseCache:
    """Cached upstream answers by (project, key), for every process of a deployment."""

    def __init__(
        self,
        db: Database,
        ttl: int,
        redis_url: str | None = None,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        trust: float = 30.0,
    ) -> None:
        self._db = db
        self.ttl = ttl
        self._redis_url = redis_url
        self._redis: Any = None
        self._max_bytes = max_bytes
        self._trust = trust
        self._lru: OrderedDict[tuple[int, str], _Entry] = OrderedDict()
        self._bytes = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._checking: set[tuple[int, str]] = set()
        self._warned = 0.0

    @property
    def layer(self) -> str:
        return "redis" if self._redis_url else "database"

    # the in-process LRU

    def _remember(self, slot: tuple[int, str], body: bytes, expires: float) -> None:
        old = self._lru.pop(slot, None)
        if old is not None:
            self._bytes -= len(old.body)
        if len(body) > self._max_bytes // 16:
            return  # one huge answer would push out everything else
        self._lru[slot] = _Entry(body, expires, time.monotonic())
        self._bytes += len(body)
        while self._bytes > self._max_bytes:
            _, evicted = self._lru.popitem(last=False)
            self._bytes -= len(evicted.body)

    def _forget(self, slot: tuple[int, str]) -> None:
        old = self._lru.pop(slot, None)
        if old is not None:
            self._bytes -= len(old.body)

    # reading

    async def get(self, project_id: int, key: str) -> bytes | None:
        """The cached answer for ``key`` in ``project_id``, or ``None``."""
        slot = (project_id, key)
        entry = self._lru.get(slot)
        now = time.time()
        if entry is not None:
            if entry.expires <= now:
                self._forget(slot)
            else:
                self._lru.move_to_end(slot)
                if time.monotonic() - entry.checked >= self._trust and slot not in self._checking:
                    # Answer from memory at once; ask the shared layer in the background.
                    self._checking.add(slot)
                    self._spawn(self._recheck(slot, now))
                return entry.body
        return await self._fetch(slot, now)

    async def _fetch(self, slot: tuple[int, str], now: float) -> bytes | None:
        try:
            shared = await self._shared_get(slot[0], slot[1], now)
        except Exception as exc:  # the cache is an optimisation: a failing layer is a miss
            self._warn("reading", exc)
            return None
        if shared is None:
            self._forget(slot)
            return None
        body, expires = shared
        self._remember(slot, body, expires)
        return body

    async def _recheck(self, slot: tuple[int, str], now: float) -> None:
        try:
            await self._fetch(slot, now)
        finally:
            self._checking.discard(slot)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _shared_get(self, project_id: int, key: str, now: float) -> tuple[bytes, float] | None:
        if self._redis_url:
            value = await self._client().get(self._db.shared_name("cache", project_id, key))
            if value is None:
                return None
            head, _, body = bytes(value).partition(b"\n")
            return body, int(head) / 1_000_000
        found = await asyncio.to_thread(self._db_get, project_id, key, int(now * 1_000_000))
        if found is None:
            return None
        return found[0].encode(), found[1] / 1_000_000

    def _db_get(self, project_id: int, key: str, now_us: int) -> tuple[str, int] | None:
        with self._db.read() as conn:
            return cached_response(conn, project_id, key, now_us)

    # writing

    def put(self, project_id: int, key: str, endpoint: str, model: str | None, body: bytes) -> None:
        """Keep ``body`` as the answer for ``key`` (in the background: the caller never waits)."""
        if self.ttl <= 0:
            return
        now = time.time()
        expires = now + self.ttl
        self._remember((project_id, key), body, expires)
        expires_us = int(expires * 1_000_000)
        if self._redis_url:
            self._spawn(self._redis_set(project_id, key, b"%d\n%s" % (expires_us, body)))
            return
        op = StoreResponse(project_id, key, endpoint, model, body.decode(), int(now * 1_000_000), expires_us)
        self._write(op)

    def _write(self, op: StoreResponse) -> None:
        try:
            self._db.writer.submit(op).add_done_callback(self._written)
        except Exception as exc:
            self._warn("storing", exc)

    def _written(self, future: Future[Any]) -> None:
        error = future.exception()
        if error is not None:
            self._warn("storing", error)

    async def _redis_set(self, project_id: int, key: str, value: bytes) -> None:
        try:
            await self._client().set(self._db.shared_name("cache", project_id, key), value, ex=self.ttl)
        except Exception as exc:
            self._warn("storing", exc)

    def _client(self) -> Any:
        if self._redis is None:
            import redis.asyncio

            self._redis = redis.asyncio.Redis.from_url(self._redis_url or "", socket_timeout=5)
        return self._redis

    def _warn(self, doing: str, exc: BaseException) -> None:
        # Once a minute at most: a cache that is down would otherwise log on every request.
        now = time.monotonic()
        if now - self._warned > 60:
            self._warned = now
            log.warning("response cache (%s) failed %s an entry: %s", self.layer, doing, exc)

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
