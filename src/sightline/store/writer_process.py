"""The single writer in a process of its own: how ``sightline serve`` writes.

A :class:`~sightline.store.writer.Writer` thread shares the server's GIL, and so its core, with the
event loop: every statement hands the GIL back, and on a busy server the writer then waits for the
event loop to let it go (and the event loop for the writer). :class:`ProcessWriter` does the same
group commit, behind the same interface, in a child process with an interpreter of its own, so
reading and validating requests and writing them to the database run side by side.

Each operation is pickled on the thread that submits it (a pickle made while another thread wants
the GIL takes ten times as long) and sent, with whatever else is queued, over a pipe. The child has
one thread: it takes every message waiting, applies them in one transaction (merging inserts as the
thread writer does), and sends back each operation's answer or error once that transaction has
committed. A request is still acknowledged only after commit.

If the child dies, every operation waiting on it fails with :class:`~sightline.errors.Unavailable`
(none of them was acknowledged) and the next write starts a new child. The child ignores Ctrl-C (a
terminal sends it to the whole process group): it ends when the server tells it to, after committing
what it was sent, or when the server's end of the pipe closes.
"""

from __future__ import annotations

import io
import itertools
import logging
import multiprocessing
import pickle
import queue
import signal
import threading
from multiprocessing.connection import Connection as Pipe
from typing import Any

from .. import gc_tuning
from ..errors import Unavailable
from .writer import QueuedWriter, Resolve, WriteOp, Writer

__all__ = ["ProcessWriter"]

log = logging.getLogger(__name__)

_PROTOCOL = pickle.HIGHEST_PROTOCOL
_STOP = b""  # from the server: commit what was sent, then end
_STOPPED = "the database writer stopped; this write was not committed"


class ProcessWriter(QueuedWriter):
    """A child process that applies write operations to ``url`` in grouped transactions."""

    def __init__(self, url: str, *, max_batch: int = 5000) -> None:
        self._url = url
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._pending: dict[int, Resolve] = {}
        self._child: _Child | None = None
        self._stopping = False
        self.commits = 0

    def start(self) -> None:
        with self._lock:
            if self._child is not None:
                if self._child.running():
                    return
                self._child.close(timeout=1.0)  # it died: its threads are ending, its waiters failed
            self._stopping = False
            self._child = _Child(self)

    def depth(self) -> int:
        return len(self._pending)

    @property
    def pid(self) -> int | None:
        """The writer process's id, once started."""
        child = self._child
        return child.pid if child is not None else None

    def put(self, op: WriteOp, resolve: Resolve) -> None:
        if self._stopping:
            raise Unavailable("the server is shutting down")
        seq = next(self._seq)
        message = pickle.dumps((seq, op), _PROTOCOL)  # raises here, to the caller, if it cannot travel
        child = self._child
        if child is None or not child.running():
            self.start()
            child = self._child
            assert child is not None
        self._pending[seq] = resolve
        child.outbox.put(message)

    def stop(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then end the child (waiting at most ``timeout`` seconds)."""
        with self._lock:
            child, self._child, self._stopping = self._child, None, True
        if child is not None:
            child.close(timeout)

    def _settle(self, seq: int, result: Any, error: BaseException | None) -> None:
        resolve = self._pending.pop(seq, None)
        if resolve is not None:
            resolve(result, error)


class _Child:
    """One writer process, and the two threads of the server that talk to it over a pipe."""

    def __init__(self, owner: ProcessWriter) -> None:
        self._owner = owner
        self.outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads or sockets copied
        self._pipe, theirs = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(owner._url, owner._max_batch, theirs), name="sightline-writer", daemon=True
        )
        self._process.start()
        theirs.close()
        self._threads = [
            threading.Thread(target=self._send, name="sightline-writer-send", daemon=True),
            threading.Thread(target=self._receive, name="sightline-writer-receive", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def running(self) -> bool:
        return all(thread.is_alive() for thread in self._threads)

    def close(self, timeout: float) -> None:
        """Ask the child to commit what it was sent and end; wait for it, its threads, then the pipe."""
        self.outbox.put(None)
        for thread in self._threads:
            thread.join(timeout)
        self._process.join(timeout)
        if self._process.is_alive():
            log.error("writer process did not end within %.1fs; %d writes left", timeout, self._owner.depth())
            self._process.kill()
            self._process.join(timeout)
        self._pipe.close()
        self._fail_unsent()

    def _fail_unsent(self) -> None:
        """Fail what was queued for this child but never reached it."""
        while True:
            try:
                message = self.outbox.get_nowait()
            except queue.Empty:
                return
            if message is not None:
                seq, _ = pickle.loads(message)
                self._owner._settle(seq, None, Unavailable(_STOPPED))

    def _send(self) -> None:
        """Hand queued operations to the child, all that wait in one message."""
        outbox = self.outbox
        while True:
            batch = [outbox.get()]
            while len(batch) < 10_000:
                try:
                    batch.append(outbox.get_nowait())
                except queue.Empty:
                    break
            stop = None in batch
            try:
                messages = [m for m in batch if m is not None]
                if messages:
                    self._pipe.send_bytes(b"".join(messages))
                if stop:
                    self._pipe.send_bytes(_STOP)
                    return
            except (OSError, ValueError):  # the child is gone: the receiver fails what waits
                return

    def _receive(self) -> None:
        """Answer each operation as the child reports its commit; fail what waits when the child ends."""
        owner = self._owner
        try:
            while True:
                commits, answers = pickle.loads(self._pipe.recv_bytes())
                owner.commits = commits
                for seq, result, error in answers:
                    owner._settle(seq, result, error)
        except (EOFError, OSError):
            pass
        self.outbox.put(None)  # ends the sender
        # Whatever still waits was not committed by this child (or never reached it): it was never
        # acknowledged. (A replacement child starts only once this thread has ended.)
        lost = list(owner._pending)
        if lost and not owner._stopping:
            log.error("the writer process ended with %d writes not committed", len(lost))
        for seq in lost:
            owner._settle(seq, None, Unavailable(_STOPPED))


def _serve(url: str, max_batch: int, pipe: Pipe) -> None:
    """The writer process: commit what the server sends, in batches, and answer after each commit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from .database import Database  # imported here: that module imports this one

    db = Database(url, write_batch_max=max_batch)
    gc_tuning.for_long_running_process()  # unpickling a batch makes tens of thousands of objects
    writer = db.writer  # a thread writer never started: its commit() runs on this one thread
    assert isinstance(writer, Writer)
    answers: list[tuple[int, Any, BaseException | None]] = []
    stop = False
    try:
        while not stop:
            batch: list[tuple[WriteOp, Resolve]] = []
            size = 0
            while size < max_batch and (not batch or pipe.poll()):
                message = pipe.recv_bytes()
                if message == _STOP:
                    stop = True
                    break
                stream = io.BytesIO(message)
                while stream.tell() < len(message):
                    seq, op = pickle.load(stream)
                    batch.append((op, _answer_to(answers, seq)))
                    size += op.size
            if batch:
                writer.commit(batch)
                pipe.send_bytes(_answers(writer.commits, answers))
                answers.clear()
    except (EOFError, OSError):
        pass  # the server is gone: nobody waits for answers
    finally:
        pipe.close()
        db.engine.dispose()


def _answer_to(answers: list[tuple[int, Any, BaseException | None]], seq: int) -> Resolve:
    return lambda result, error: answers.append((seq, result, error))


def _answers(commits: int, done: list[tuple[int, Any, BaseException | None]]) -> bytes:
    try:
        return pickle.dumps((commits, done), _PROTOCOL)
    except Exception:  # noqa: BLE001 - an error that cannot be pickled travels as its text
        safe = []
        for seq, result, error in done:
            try:
                pickle.dumps(error, _PROTOCOL)
            except Exception:  # noqa: BLE001
                error = RuntimeError(f"{type(error).__name__}: {error}")
            safe.append((seq, result, error))
        return pickle.dumps((commits, safe), _PROTOCOL)
