"""The single writer in a process of its own: how ``sightline serve`` writes.

A :class:`~sightline.store.engine.writer.Writer` thread shares the server's GIL, and so its core, with the
event loop: every statement hands the GIL back, and on a busy server the writer then waits for the
event loop to let it go (and the event loop for the writer). :class:`ProcessWriter` does the same
group commit, behind the same interface, in a child process with an interpreter of its own, so
reading and validating requests and writing them to the database run side by side.

Each operation is pickled on the thread that submits it (a pickle made while another thread wants
the GIL takes ten times as long) and sent over a socket, by that thread when the socket takes the
whole message at once (nearly always), else by a sender thread that waits for room: an event loop
never blocks on the writer, and waking another thread, which must then take the GIL from the busy
event loop, is not paid on every write. The child has one thread: it takes every message waiting,
applies them in one transaction (merging inserts as the thread writer does), and sends back each
operation's answer or error once that transaction has committed. A request is still acknowledged
only after commit.

If the child dies, every operation waiting on it fails with :class:`~sightline.errors.Unavailable`
(none of them was acknowledged) and the next write starts a new child. The child ignores Ctrl-C (a
terminal sends it to the whole process group): it ends when the server tells it to, after committing
what it was sent, or when the server's end of the socket closes.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import pickle
import signal
import socket
import struct
import threading
from collections import deque
from typing import Any

from ... import gc_tuning
from ...errors import Unavailable
from . import connection
from .writer import QueuedWriter, Resolve, WriteOp, Writer

__all__ = ["ProcessWriter"]

log = logging.getLogger(__name__)

_PROTOCOL = pickle.HIGHEST_PROTOCOL
_STOP = b""  # from the server: commit what was sent, then end
_LENGTH = struct.Struct("<Q")  # each message on the socket: its length, then its bytes
_RECEIVE = 1 << 20
_BUFFER = 4 << 20
_STOPPED = "the database writer stopped; this write was not committed"


def _framed(message: bytes) -> bytes:
    """``message`` as it travels on the socket: its length, then its bytes (read by :class:`_Messages`)."""
    return _LENGTH.pack(len(message)) + message


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
        child.send(seq, message)

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
    """One writer process, and the server's side of the socket to it (with a thread that receives
    the answers, and one that sends what the socket could not take at once)."""

    def __init__(self, owner: ProcessWriter) -> None:
        self._owner = owner
        self._socket, theirs = socket.socketpair()
        # Room for many batches on their way (the kernel may allow less: net.core.wmem_max), so that
        # sends complete at once while the child is busy committing.
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _BUFFER)
        self._lock = threading.Condition(threading.Lock())
        self._unsent: list[bytes] = []  # for the sender thread, in order
        self._sending = False  # the sender thread is writing: later messages queue behind it
        self._closed = False
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads or sockets copied
        self._process = context.Process(
            target=_serve, args=(owner._url, owner._max_batch, theirs), name="sightline-writer", daemon=True
        )
        self._process.start()
        theirs.close()
        self._threads = [
            threading.Thread(target=self._send_unsent, name="sightline-writer-send", daemon=True),
            threading.Thread(target=self._receive, name="sightline-writer-receive", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def running(self) -> bool:
        return all(thread.is_alive() for thread in self._threads)

    def send(self, seq: int, message: bytes) -> None:
        """Send operation ``seq``'s ``message`` from the calling thread if the socket takes all of it
        now; else queue it for the sender thread. Never waits for the child."""
        data = _framed(message)
        with self._lock:
            closed = self._closed
            if not closed:
                if not self._sending and not self._unsent:
                    try:
                        sent = self._socket.send(data, socket.MSG_DONTWAIT)
                    except BlockingIOError:
                        sent = 0
                    except OSError:  # the child is gone: the receiver fails what waits
                        return
                    if sent == len(data):
                        return
                    data = data[sent:]
                self._unsent.append(data)
                self._lock.notify()
        if closed:  # answered outside the lock: an answer's callback may write again
            self._owner._settle(seq, None, Unavailable(_STOPPED))

    def close(self, timeout: float) -> None:
        """Ask the child to commit what it was sent and end; wait for it, its threads, then the socket."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._unsent.append(_framed(_STOP))
                self._lock.notify()
        for thread in self._threads:
            thread.join(timeout)
        self._process.join(timeout)
        if self._process.is_alive():
            log.error("writer process did not end within %.1fs; %d writes left", timeout, self._owner.depth())
            self._process.kill()
            self._process.join(timeout)
        self._socket.close()

    def _send_unsent(self) -> None:
        """Send, in order and waiting for room, what :meth:`send` could not; end once closed and all sent."""
        while True:
            with self._lock:
                self._sending = False
                while not self._unsent and not self._closed:
                    self._lock.wait()
                if not self._unsent:
                    return
                data, self._sending = b"".join(self._unsent), True
                self._unsent.clear()
            try:
                self._socket.sendall(data)
            except OSError:  # the child is gone: the receiver fails what waits
                with self._lock:
                    self._closed = True
                return

    def _receive(self) -> None:
        """Answer each operation as the child reports its commit; fail what waits when the child ends."""
        owner = self._owner
        messages = _Messages(self._socket)
        try:
            while True:
                for message in messages.read(wait=True):
                    commits, answers = pickle.loads(message)
                    owner.commits = commits
                    for seq, result, error in answers:
                        owner._settle(seq, result, error)
        except (EOFError, OSError):
            pass
        with self._lock:
            self._closed = True  # ends the sender
            self._lock.notify()
        # Whatever still waits was not committed by this child (or never reached it): it was never
        # acknowledged. (A replacement child starts only once this thread has ended.)
        lost = list(owner._pending)
        if lost and not owner._stopping:
            log.error("the writer process ended with %d writes not committed", len(lost))
        for seq in lost:
            owner._settle(seq, None, Unavailable(_STOPPED))


class _Messages:
    """The messages arriving on a stream socket, each sent as its length and then its bytes."""

    def __init__(self, sock: socket.socket) -> None:
        self._socket = sock
        self._buffer = bytearray()
        self._ended = False

    def read(self, *, wait: bool) -> list[bytes]:
        """Every whole message received so far; with ``wait``, at least one (blocking until then).
        Raises EOFError once the other end has closed and every message was read."""
        messages: list[bytes] = []
        while not self._ended:
            try:
                data = self._socket.recv(_RECEIVE, socket.MSG_DONTWAIT if messages or not wait else 0)
            except BlockingIOError:
                return messages
            if not data:
                self._ended = True
                break
            self._buffer += data
            messages += self._split()
        if not messages:
            raise EOFError
        return messages

    def _split(self) -> list[bytes]:
        buffer, at, found = self._buffer, 0, []
        while len(buffer) - at >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(buffer, at)
            end = at + _LENGTH.size + length
            if len(buffer) < end:
                break
            found.append(bytes(memoryview(buffer)[at + _LENGTH.size : end]))
            at = end
        del buffer[:at]
        return found


def _serve(url: str, max_batch: int, sock: socket.socket) -> None:
    """The writer process: commit what the server sends, in batches, and answer after each commit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    engine = connection.create(url)
    # A thread writer never started: its commit() runs on this one thread.
    writer = Writer(engine, max_batch=max_batch)
    gc_tuning.for_long_running_process()  # unpickling a batch makes tens of thousands of objects
    messages = _Messages(sock)
    waiting: deque[bytes] = deque()  # received, not yet applied (beyond one batch's worth)
    answers: list[tuple[int, Any, BaseException | None]] = []
    stop = False
    try:
        while not stop:
            batch: list[tuple[WriteOp, Resolve]] = []
            size = 0
            while size < max_batch and (waiting or not batch or _more(messages, waiting)):
                if not waiting:
                    waiting.extend(messages.read(wait=True))
                message = waiting.popleft()
                if message == _STOP:
                    stop = True
                    break
                seq, op = pickle.loads(message)  # one operation a message
                batch.append((op, _answer_to(answers, seq)))
                size += op.size
            if batch:
                writer.commit(batch)
                sock.sendall(_framed(_answers(writer.commits, answers)))
                answers.clear()
    except (EOFError, OSError):
        pass  # the server is gone: nobody waits for answers
    finally:
        sock.close()
        engine.dispose()


def _more(messages: _Messages, waiting: deque[bytes]) -> bool:
    """Whether more messages have arrived (taking them into ``waiting``). At the end of the stream:
    no (the batch taken so far is committed; the next read ends the process)."""
    with contextlib.suppress(EOFError):
        waiting.extend(messages.read(wait=False))
    return bool(waiting)


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
