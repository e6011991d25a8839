"""The single writer: every write to a database goes through one thread that groups them.

Requests enqueue a write and wait for its future; the writer thread drains whatever is queued
(up to ``max_batch`` records) into one transaction, commits, and only then resolves the futures.
So many concurrent requests share one commit (group commit), SQLite never sees two writers at
once, and a 2xx answer always means the rows are on disk.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import queue
import threading
from concurrent.futures import Future
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy import Connection, Engine

from ..errors import SightlineError, Unavailable

__all__ = ["WriteOp", "Writer"]

log = logging.getLogger(__name__)


class WriteOp(Protocol):
    """One unit of writing: applied inside the writer's transaction, alongside others."""

    size: int

    def apply(self, conn: Connection) -> Any: ...


# Called by the writer thread once the op's transaction ended: (result, None) or (None, error).
Resolve = Callable[[Any, BaseException | None], None]
_Item = tuple[WriteOp, Resolve]


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if not future.done():
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


def _settle_concurrent(future: Future[Any], result: Any, error: BaseException | None) -> None:
    if not future.cancelled():
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


class Writer:
    """A thread that applies queued write operations in grouped transactions."""

    def __init__(self, engine: Engine, *, max_batch: int = 5000) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopping = False
        self.commits = 0

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stopping = False
                self._thread = threading.Thread(target=self._loop, name="sightline-writer", daemon=True)
                self._thread.start()

    def depth(self) -> int:
        """How many write operations wait in the queue."""
        return self._queue.qsize()

    def _put(self, op: WriteOp, resolve: Resolve) -> None:
        if self._stopping:
            raise Unavailable("the server is shutting down")
        if self._thread is None:
            self.start()
        self._queue.put((op, resolve))

    def submit(self, op: WriteOp) -> Future[Any]:
        """Queue ``op``; the future resolves once its transaction has committed."""
        future: Future[Any] = Future()
        self._put(op, functools.partial(_settle_concurrent, future))
        return future

    async def write(self, op: WriteOp) -> Any:
        """Queue ``op`` and wait (without blocking the event loop) until it is committed.

        Settles an asyncio future straight from the writer thread: cheaper per request than a
        ``concurrent.futures.Future`` (a lock and a condition each) wrapped for asyncio.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def resolve(result: Any, error: BaseException | None) -> None:
            try:
                loop.call_soon_threadsafe(_settle, future, result, error)
            except RuntimeError:  # the loop closed while this write was queued: nobody waits
                pass

        self._put(op, resolve)
        return await future

    def write_sync(self, op: WriteOp, timeout: float | None = None) -> Any:
        return self.submit(op).result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then end the thread (waiting at most ``timeout`` seconds)."""
        with self._lock:
            thread, self._stopping = self._thread, True
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout)
            if thread.is_alive():
                log.error("writer did not finish within %.1fs; %d writes left", timeout, self.depth())
        self._thread = None

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch, size, stop = [item], item[0].size, False
            while size < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
                size += more[0].size
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[_Item]) -> None:
        try:
            with self._engine.begin() as conn:
                results = [op.apply(conn) for op, _ in batch]
        except Exception as error:
            if len(batch) == 1:
                if not isinstance(error, SightlineError):
                    log.exception("write failed")
                batch[0][1](None, error)
                return
            # One operation broke the shared transaction: apply each on its own, so the others
            # still land and only the broken one reports its error.
            for one in batch:
                self._commit([one])
            return
        self.commits += 1
        for (_, resolve), result in zip(batch, results, strict=True):
            resolve(result, None)
