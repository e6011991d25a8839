"""The single writer: every write to a database goes through one thread that groups them.

Requests enqueue a write and wait for its future; the writer thread drains whatever is queued
(up to ``max_batch`` records) into one transaction, commits, and only then resolves the futures.
So many concurrent requests share one commit (group commit), SQLite never sees two writers at
once, and a 2xx answer always means the rows are on disk.

Queued operations of the same kind and scope (say, the generations of eight ingest requests) are
merged into one before they are applied (:meth:`MergeableOp.merge`): one statement per table for all
of them, instead of one per request. Each statement hands the GIL back and waits to take it
again, so on a busy server the number of statements, more than their size, sets the writer's pace.

On a machine with more than one core, ``sightline serve`` runs the same writer in a process of its own
(``writer_process.ProcessWriter``, behind the same interface, :class:`QueuedWriter`), so that it shares
no GIL with the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from ...errors import SightlineError, Unavailable, redacted_traceback

__all__ = ["WAL_LIMIT", "MergeableOp", "QueuedWriter", "WriteOp", "Writer"]

log = logging.getLogger(__name__)

# Past this size the writer restarts SQLite's write-ahead log itself (see Writer.__init__).
WAL_LIMIT = 256 * 1024 * 1024


class WriteOp(Protocol):
    """One unit of writing: applied inside the writer's transaction, alongside others."""

    size: int

    def apply(self, conn: Connection) -> Any: ...


class MergeableOp(WriteOp, Protocol):
    """A write operation that can take on the work of the one queued after it."""

    def merge(self, other: WriteOp) -> WriteOp | None:
        """An operation doing this one's work and then ``other``'s, or ``None`` when they cannot be
        merged; neither is changed (an operation that a merge made may be extended in place). The
        merged operation's ``apply`` answers a list: this one's answers (``size`` items) followed by
        ``other``'s."""


# Called by the writer thread once the op's transaction ended: (result, None) or (None, error).
Resolve = Callable[[Any, BaseException | None], None]
_Item = tuple[WriteOp, Resolve]


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if not future.done():
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


class _LoopSettler:
    """Settles asyncio futures of one event loop from other threads, waking the loop once for all the
    answers that arrive together (a commit answers many writes) rather than once each."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._ready: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        self._lock = threading.Lock()

    def __call__(self, future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
        with self._lock:
            self._ready.append((future, result, error))
            if len(self._ready) > 1:
                return  # the loop is woken already
        with contextlib.suppress(RuntimeError):  # the loop closed while this was queued: nobody waits
            self.loop.call_soon_threadsafe(self._settle_ready)

    def _settle_ready(self) -> None:
        with self._lock:
            ready, self._ready = self._ready, []
        for future, result, error in ready:
            _settle(future, result, error)


def _settle_concurrent(future: Future[Any], result: Any, error: BaseException | None) -> None:
    if not future.cancelled():
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


Observer = Callable[["WriteOp", Any, float], None]


def _observed(
    observers: tuple[Observer, ...], op: WriteOp, started: float, future: asyncio.Future[Any]
) -> None:
    if future.cancelled() or future.exception() is not None:
        return
    seconds = time.perf_counter() - started
    for observer in observers:
        try:
            observer(op, future.result(), seconds)
        except Exception:  # noqa: BLE001 - an observer's failure never fails a write
            log.exception("a write observer failed")


class QueuedWriter(ABC):
    """How a write is handed to the writer and waited for, whatever runs it (a thread here, or a
    process: ``writer_process.ProcessWriter``)."""

    commits: int  # transactions committed so far
    _settler: _LoopSettler | None = None

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then end (waiting at most ``timeout`` seconds)."""

    @abstractmethod
    def depth(self) -> int:
        """How many write operations wait for their commit."""

    @abstractmethod
    def put(self, op: WriteOp, resolve: Resolve) -> None:
        """Queue ``op``; ``resolve(result, error)`` is called, from another thread, once its
        transaction has ended."""

    def submit(self, op: WriteOp) -> Future[Any]:
        """Queue ``op``; the future resolves once its transaction has committed."""
        future: Future[Any] = Future()
        if self._observers:
            future.add_done_callback(functools.partial(_observed, self._observers, op, time.perf_counter()))
        self.put(op, functools.partial(_settle_concurrent, future))
        return future

    def write(self, op: WriteOp) -> asyncio.Future[Any]:
        """Queue ``op`` now; await the answer to wait (without blocking the event loop) until it is
        committed.

        A plain function, not a coroutine: the operation is on its way before the caller's next
        ``await``. (A coroutine handed to ``asyncio.gather`` would first be wrapped in a task that
        starts on a later turn of the loop, after every request handler that is ready meanwhile:
        on a busy server the writer then sat idle for several requests' validation.) The future is
        settled from the writer's thread: cheaper per request than a ``concurrent.futures.Future``
        (a lock and a condition each) wrapped for asyncio.
        """
        loop = asyncio.get_running_loop()
        settler = self._settler
        if settler is None or settler.loop is not loop:
            settler = self._settler = _LoopSettler(loop)
        future: asyncio.Future[Any] = loop.create_future()
        if self._observers:
            future.add_done_callback(functools.partial(_observed, self._observers, op, time.perf_counter()))
        self.put(op, functools.partial(settler, future))
        return future

    def write_sync(self, op: WriteOp, timeout: float | None = None) -> Any:
        return self.submit(op).result(timeout)

    _observers: tuple[Observer, ...] = ()

    def observe(self, observer: Observer) -> None:
        """Call ``observer(op, answer, seconds)`` after each operation written with :meth:`write` (in
        the event loop's thread) or :meth:`submit` (in the thread that settles it) has committed
        (``seconds``: from then to the commit). The server's metrics count every generation this
        way, whichever road it came by; an observer must be quick and thread-safe."""
        self._observers = (*self._observers, observer)


class Writer(QueuedWriter):
    """A thread that applies queued write operations in grouped transactions."""

    def __init__(self, engine: Engine, *, max_batch: int = 5000, wal_limit: int = WAL_LIMIT) -> None:
        self._engine = engine
        # SQLite's own checkpoints reset the WAL only at a moment no reader is on an older snapshot:
        # under steady reads and a second writer (ingest while `retention run` deleted a million
        # rows) that moment never came and the WAL grew to 66 GB. Past ``wal_limit`` bytes this
        # writer checkpoints it whole and restarts it (waiting up to the busy timeout for readers).
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        self._wal = f"{database}-wal" if database and database != ":memory:" else None
        self._wal_limit = wal_limit
        # SQLite's driver begins a transaction only at the first INSERT/UPDATE, so what an operation
        # read before it (the next version number of a prompt, the ids already stored) was read outside
        # it, and another process's writer could commit in between. BEGIN IMMEDIATE takes the write lock
        # first: every operation's reads and writes are one serialised transaction, as on PostgreSQL
        # (where insert_ignore's RETURNING covers the READ COMMITTED race).
        self._begin = "BEGIN IMMEDIATE" if engine.dialect.name == "sqlite" else None
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
        return self._queue.qsize()

    def put(self, op: WriteOp, resolve: Resolve) -> None:
        if self._stopping:
            raise Unavailable("the server is shutting down")
        if self._thread is None:
            self.start()
        self._queue.put((op, resolve))

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
            self.commit(batch)
            if stop:
                return

    def commit(self, batch: list[_Item]) -> None:
        """Apply ``batch`` in one transaction, then resolve each operation (on the calling thread).

        If the transaction fails, each operation is applied alone, so only the broken one fails.
        """
        try:
            with self._engine.begin() as conn:
                if self._begin:
                    conn.exec_driver_sql(self._begin)
                results = [result for op, parts in _merged(batch) for result in _split(op.apply(conn), parts)]
        except Exception as error:
            if len(batch) == 1:
                if not isinstance(error, SightlineError):
                    # Not log.exception: a database quotes the values it refused (a prompt, a body).
                    log.error("write failed\n%s", redacted_traceback(error))
                batch[0][1](None, error)
                return
            # One operation broke the shared transaction: apply each on its own, so the others
            # still land and only the broken one reports its error.
            for one in batch:
                self.commit([one])
            return
        self.commits += 1
        for (_, resolve), result in zip(batch, results, strict=True):
            resolve(result, None)
        if self._wal is not None:
            self._bound_wal(self._wal)

    def _bound_wal(self, wal: str) -> None:
        try:
            if os.stat(wal).st_size <= self._wal_limit:
                return
            with self._engine.connect() as conn:
                busy = conn.exec_driver_sql("PRAGMA wal_checkpoint(RESTART)").one()[0]
        except (OSError, SQLAlchemyError) as error:
            log.warning("could not checkpoint the write-ahead log: %s", type(error).__name__)
            return
        if busy:  # a reader held an old snapshot past the busy timeout: tried again after the next commit
            mib = self._wal_limit >> 20
            log.warning("the write-ahead log is past %d MiB; a reader kept it from restarting", mib)


def _merged(batch: list[_Item]) -> list[tuple[WriteOp, list[WriteOp]]]:
    """Runs of consecutive operations that merge, each as (merged operation, the operations in it)."""
    runs: list[tuple[WriteOp, list[WriteOp]]] = []
    for op, _ in batch:
        merge = getattr(runs[-1][0], "merge", None) if runs else None
        merged = merge(op) if merge is not None else None
        if merged is not None:
            runs[-1] = (merged, runs[-1][1])
            runs[-1][1].append(op)
        else:
            runs.append((op, [op]))
    return runs


def _split(result: Any, ops: list[WriteOp]) -> list[Any]:
    """The answer of each of ``ops`` from the answer of their merged operation."""
    if len(ops) == 1:
        return [result]
    answers, start = [], 0
    for op in ops:
        answers.append(result[start : start + op.size])
        start += op.size
    return answers
