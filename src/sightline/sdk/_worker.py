"""The background exporters of a process: one per destination, shared by the clients that send there.

A client gets the exporter of its :class:`~sightline.sdk._config.Destination` (its server, key and
exporter settings) from :func:`configure`. Clients whose settings are equal share one exporter;
clients whose settings differ each have their own, so one client's interval, queue size or deadline
never becomes another's.

The caller's thread only appends to the exporter's bounded deque (:meth:`Exporter.submit`). A daemon
thread, started with the first record, wakes every ``flush_interval`` (or as soon as a batch is
full), turns the records into wire items (redacting when asked) and posts them in batches by count
and bytes, each batch written as JSON in one pass.

What does not fit in a queue is dropped, counted in :func:`stats` and logged at most once a minute.
At process exit every exporter is flushed at once, each within its ``exit_timeout``, so a dead
server never hangs the exit; after ``os.fork()`` the child's exporters start over with empty queues
(the parent's records are the parent's to send) and threads of their own.

With a spool (``SightlineConfig(spool_dir=...)``, :mod:`sightline.sdk._spool`), what is not
delivered is kept on disk instead of lost: records given up on after ``max_retry_seconds`` as they
are, and at exit (or :meth:`Exporter.close`) everything still queued or being retried, in one file
(records the server refused with a 4xx are never kept: they would be refused again). When the
exporter thread starts, a second thread sends the destination's spooled files, so a server still
down holds up no new record; it tries again every few minutes while the process records and files
are left.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import httpx

from sightline.sdk._config import Destination, SightlineConfig
from sightline.sdk._guard import Throttle, logger, under_pytest
from sightline.sdk._sender import FEEDBACK_KEY, Counters, Sender, dumps_batch
from sightline.sdk._spool import Resender, Spool

__all__ = ["Encoder", "Exporter", "Stats", "configure", "flush", "reset", "stats", "submit"]

Encoder = Callable[[Destination, str, Any], tuple[str, Any]]
"""Turns ``(destination, kind, payload)`` into ``(endpoint, item)`` on the exporter thread."""

_FLUSH = "<flush>"
# Records encoded between two offers of the GIL to other threads: a caller whose response just
# arrived waits for at most this many records, not for a whole batch (about 20 µs each).
_YIELD_EVERY = 16
# Seconds the exit waits, past the flush deadline, for the threads to hand over what they hold.
_EXIT_GRACE = 0.5


@dataclass(frozen=True, slots=True)
class Stats:
    """Counts of the records this process handed to Sightline.

    ``queued``: waiting to be sent; ``sent``: acknowledged by the server; ``dropped``: did not fit in
    the queue (or, with a spool, in the spool: the oldest spooled records make room for new ones);
    ``rejected``: refused by the server (4xx); ``failed``: given up on after retrying or lost to an
    internal error; ``retries``: attempts repeated; ``batches``: requests answered; ``spooled``:
    written to the spool instead of being given up on; ``resent``: spooled records (of this process
    or an earlier one) that the server acknowledged.
    """

    queued: int = 0
    sent: int = 0
    dropped: int = 0
    rejected: int = 0
    failed: int = 0
    retries: int = 0
    batches: int = 0
    internal_errors: int = 0
    spooled: int = 0
    resent: int = 0

    def as_dict(self) -> dict[str, int]:
        """These counts as a plain dict."""
        return asdict(self)

    def __add__(self, other: Stats) -> Stats:
        return Stats(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Stats)))


class Exporter:
    """The bounded queue of one destination, drained by one daemon thread."""

    def __init__(
        self, dest: Destination, encode: Encoder, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.dest = dest
        self._encode = encode
        self._transport = transport
        self._fresh()

    def _fresh(self) -> None:
        """Empty queue, zero counts, no thread: a new exporter, or this one in a forked child."""
        self._queue: deque[tuple[str, Any]] = deque()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._counters = Counters()
        self._drop_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._throttle = Throttle()
        self._errors: list[BaseException] = []
        self._in_hand = 0  # taken from the queue by the thread, not yet sent, refused or given up on
        self._thread: threading.Thread | None = None
        self._spool = Spool(self.dest) if self.dest.spool_dir else None
        keep = self._keep if self._spool is not None else None
        self._sender = Sender(self._counters, self._sleep, self._transport, keep)
        # What the exporter thread holds, for close() to spool when that thread does not stop in time.
        self._building: list[Any] = []
        self._delivering: list[Any] = []
        self._leftover: list[Any] = []  # given up on while closing
        self._spool_lock = threading.Lock()
        self._abandoned = False  # close() spooled what the threads held: they must not spool it again
        self._resent = Counters()
        self._resend_left: list[Any] = []
        self._resend_sender = Sender(self._resent, self._sleep, self._transport, self._resend_left.extend)
        self._resender = (
            Resender(self._spool, self._resend_items, self._closing, self._internal) if self._spool else None
        )

    # -- caller side -------------------------------------------------------------------------

    def submit(self, kind: str, payload: Any) -> None:
        """Queue one record without blocking; drop (and count) it when the queue is full."""
        queue = self._queue
        if len(queue) >= self.dest.max_queue_size:
            self._drop()
            return
        queue.append((kind, payload))
        if self._thread is None:
            self._start()
        if len(queue) >= self.dest.max_batch_items and not self._wake.is_set():
            self._wake.set()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._closing.is_set():
                thread = threading.Thread(target=self._run, name="sightline-exporter", daemon=True)
                thread.start()
                self._thread = thread
                if self._resender is not None:
                    self._resender.start()

    def _drop(self) -> None:
        with self._drop_lock:
            self._counters.dropped += 1
        if self._throttle.ready("overflow"):
            logger.warning(
                "sightline: the queue is full (%d records); dropping records until the server catches up",
                self.dest.max_queue_size,
            )

    def start_flush(self) -> threading.Event | None:
        """Ask for everything queued so far to be sent; the event is set once it was. None: nothing to do."""
        if self._thread is None or not self._thread.is_alive():
            return None
        done = threading.Event()
        self._queue.append((_FLUSH, done))
        self._wake.set()
        return done

    def flush(self, timeout: float | None) -> bool:
        """Send everything queued so far; True when it was all handled before ``timeout`` seconds."""
        done = self.start_flush()
        finished = self.wait_flushed(done, None if timeout is None else time.monotonic() + timeout)
        self.raise_errors()
        return finished

    def wait_flushed(self, done: threading.Event | None, deadline: float | None) -> bool:
        """Wait for a flush started by :meth:`start_flush`, and for the spool being sent, if it is."""

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        if done is not None and not done.wait(left()):
            return False
        return self._resender is None or self._resender.idle.wait(left())

    @property
    def spooling(self) -> bool:
        """Whether what this exporter cannot deliver is kept in a spool."""
        return self._spool is not None

    def raise_errors(self) -> None:
        """Under pytest, raise the first error the exporter thread met (tests see bugs, users do not)."""
        if self._errors and under_pytest():
            raise self._errors.pop(0)

    def stats(self) -> Stats:
        """The counts so far."""
        c, r = self._counters, self._resent
        queued = sum(1 for kind, _ in list(self._queue) if kind != _FLUSH) + max(0, self._in_hand)
        return Stats(
            queued,
            c.sent,
            c.dropped,
            c.rejected + r.rejected,
            c.failed,
            c.retries + r.retries,
            c.batches + r.batches,
            c.internal_errors,
            c.spooled,
            r.sent,
        )

    def close(self, timeout: float, grace: float = 1.0) -> bool:
        """Flush with a deadline and stop the threads; with a spool, keep there what is left.

        ``grace``: seconds the threads get, after the deadline, to stop and hand over what they hold.
        """
        done = self.start_flush()
        finished = self.wait_flushed(done, time.monotonic() + timeout)
        if self._spool is not None:
            self._spool_rest(time.monotonic() + grace)
            return finished
        self._closing.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=grace)
        return finished

    # -- worker side -------------------------------------------------------------------------

    def _sleep(self, seconds: float) -> bool:
        return not self._closing.wait(seconds)

    def _run(self) -> None:
        while not self._closing.is_set():
            self._wake.wait(self.dest.flush_interval)
            self._wake.clear()
            try:
                self._drain()
            except Exception as exc:  # a bug here must not kill the thread
                self._internal("draining the queue", exc)
        self._sender.close()

    def _drain(self) -> None:
        dest, queue, encode = self.dest, self._queue, self._encode
        spooling, closing = self._spool is not None, self._closing
        items: list[Any] = []
        self._building = items
        encoded = 0
        while queue:
            if spooling and closing.is_set():
                return  # close() spools what is left, ``items`` included
            kind, payload = queue.popleft()
            if kind == _FLUSH:
                self._deliver(items)
                items = self._building = []
                payload.set()
                continue
            self._in_hand += 1
            encoded += 1
            if encoded % _YIELD_EVERY == 0:
                time.sleep(0)
            try:
                endpoint, item = encode(dest, kind, payload)
            except Exception as exc:
                self._in_hand -= 1
                self._counters.failed += 1
                self._internal(f"encoding a {kind}", exc)
                continue
            if endpoint == "feedback":
                # What was recorded before this feedback goes first: its generation may be among it.
                self._deliver(items)
                items = self._building = []
                self._delivering = [{"type": FEEDBACK_KEY, "body": item}]
                try:
                    self._sender.feedback(dest, item)
                finally:
                    self._delivering = []
                    self._in_hand -= 1
                continue
            items.append(item)
            if len(items) >= dest.max_batch_items:
                self._deliver(items)
                items = self._building = []
        self._deliver(items)

    def _deliver(self, items: list[Any]) -> None:
        self._delivering = items
        try:
            self._send(items, self._sender)
        except Exception as exc:  # a bug while sending: the records are lost, and counted so
            self._counters.failed += len(items)
            self._internal("sending a batch", exc)
        finally:
            self._delivering = []
            self._in_hand -= len(items)

    def _send(self, items: list[Any], sender: Sender) -> None:
        """Post ``items`` in as few batches as ``max_batch_bytes`` allows."""
        if not items:
            return
        items, body = self._dump(items)
        if len(body) > self.dest.max_batch_bytes and len(items) > 1:
            half = len(items) // 2
            self._send(items[:half], sender)
            self._send(items[half:], sender)
        elif items:
            sender.ingest(self.dest, items, body)

    def _dump(self, items: list[Any]) -> tuple[list[Any], bytes]:
        """The items that can be written as JSON and their batch's body; one bad item costs only itself."""
        try:
            return items, dumps_batch(items)
        except Exception:
            pass
        good = []
        for item in items:
            try:
                dumps_batch([item])
            except Exception as exc:
                self._counters.failed += 1
                self._internal(f"writing a {item.get('type')} as JSON", exc)
            else:
                good.append(item)
        return good, dumps_batch(good)

    def _internal(self, doing: str, exc: BaseException) -> None:
        self._counters.internal_errors += 1
        if under_pytest():
            self._errors.append(exc)
        logger.error("sightline: internal error while %s", doing, exc_info=exc)

    # -- spool -------------------------------------------------------------------------------

    def _keep(self, items: list[Any]) -> None:
        """The sender gave up on ``items`` (the server stayed down, or closing): spool them."""
        with self._spool_lock:
            if self._abandoned:
                return  # close() spooled them with the rest
            if self._closing.is_set():
                self._leftover.extend(items)  # close() writes all that is left in one file
                return
            self._write(items)
        if self._resender is not None:
            self._resender.start(later=True)

    def _write(self, items: list[Any]) -> int:
        assert self._spool is not None
        written = self._spool.write(items)
        self._counters.spooled += written.kept
        self._counters.failed += written.failed
        if written.dropped:
            with self._drop_lock:
                self._counters.dropped += written.dropped
        return written.kept

    def _spool_rest(self, deadline: float) -> int:
        """Stop the threads (by ``deadline``) and spool what they hold and what is queued: one file."""
        assert self._spool is not None and self._resender is not None
        self._closing.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        self._resender.stop(deadline)
        with self._spool_lock:
            if self._abandoned:
                return 0
            self._abandoned = True
            # A thread that did not stop (a request under way) may still deliver some of these: the
            # server keeps one copy of a generation (see _spool), so a duplicate costs nothing there.
            held, seen = [], set()
            for item in [*self._leftover, *self._delivering, *self._building]:
                if id(item) not in seen:
                    seen.add(id(item))
                    held.append(item)
            self._leftover, rest = [], list(self._queue)
            self._queue.clear()
            self._in_hand = 0
        for kind, payload in rest:
            if kind == _FLUSH:
                payload.set()
                continue
            try:
                endpoint, item = self._encode(self.dest, kind, payload)
            except Exception as exc:
                self._counters.failed += 1
                self._internal(f"encoding a {kind}", exc)
                continue
            held.append({"type": FEEDBACK_KEY, "body": item} if endpoint == "feedback" else item)
        return self._write(held) if held else 0

    def _resend_items(self, items: list[Any]) -> list[Any]:
        """Send the items of a spool file (on the resender's thread); the ones the server did not take.

        Once a batch was given up on (the server is still down), the rest is not tried: each batch
        would wait out its own ``max_retry_seconds``.
        """
        left = self._resend_left
        left.clear()
        ingest = [item for item in items if item["type"] != FEEDBACK_KEY]
        feedback = [item for item in items if item["type"] == FEEDBACK_KEY]
        size = self.dest.max_batch_items
        batches: list[list[Any]] = [ingest[start : start + size] for start in range(0, len(ingest), size)]
        batches += [[item] for item in feedback]
        for i, batch in enumerate(batches):
            if left or self._closing.is_set():
                left.extend(item for rest in batches[i:] for item in rest)
                break
            if batch[0]["type"] == FEEDBACK_KEY:
                self._resend_sender.feedback(self.dest, batch[0]["body"])
            else:
                self._send(batch, self._resend_sender)
        taken = list(left)
        left.clear()
        return taken


class _Exporters:
    """The exporters of this process by destination, and what every new one needs."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_dest: dict[Destination, Exporter] = {}
        self.encoder: Encoder | None = None
        self.transport: httpx.BaseTransport | None = None
        self.hooked = False
        self.last: tuple[Destination, Exporter] | None = None  # what the previous record was sent to

    def get(self, dest: Destination, encoder: Encoder | None = None) -> Exporter:
        with self.lock:
            if encoder is not None:
                self.encoder = encoder
            exporter = self.by_dest.get(dest)
            if exporter is None:
                if self.encoder is None:
                    raise RuntimeError("sightline: a record was sent before any client set up an exporter")
                if not self.hooked:
                    atexit.register(_at_exit)
                    if hasattr(os, "register_at_fork"):
                        os.register_at_fork(after_in_child=self.after_fork_in_child)
                    self.hooked = True
                exporter = self.by_dest[dest] = Exporter(dest, self.encoder, self.transport)
            return exporter

    def all(self) -> list[Exporter]:
        return list(self.by_dest.values())

    def after_fork_in_child(self) -> None:
        # The parent's threads do not exist here, its locks may be held, its queues are its own.
        self.lock = threading.Lock()
        for exporter in self.by_dest.values():
            exporter._fresh()


_exporters = _Exporters()


def configure(config: SightlineConfig, encoder: Encoder) -> Exporter:
    """The exporter of a (resolved, recording) client configuration, made on first use.

    Clients with equal destinations share it. ``encoder`` turns records into wire items on the
    exporter thread (the client passes :func:`sightline.sdk._encode.encode`).
    """
    return _exporters.get(config.destination(), encoder)


def submit(dest: Destination, kind: str, payload: Any) -> None:
    """Queue one record for ``dest`` (never blocks, never raises on a full queue)."""
    # Clients usually hold the very destination object of the previous record: an identity check
    # instead of the dict's comparison of fourteen fields with an equal copy (~3 µs a record).
    last = _exporters.last
    if last is not None and last[0] is dest:
        exporter = last[1]
    else:
        exporter = _exporters.by_dest.get(dest) or _exporters.get(dest)
        _exporters.last = (dest, exporter)
    exporter.submit(kind, payload)


def _flush_all(deadline_of: Callable[[Exporter], float | None]) -> tuple[bool, int]:
    """Flush every exporter at once, each until its deadline (None: none): (all done, records left)."""
    waiting = [(exporter, exporter.start_flush()) for exporter in _exporters.all()]
    finished, left = True, 0
    for exporter, done in waiting:
        if not exporter.wait_flushed(done, deadline_of(exporter)):
            finished = False
            if not exporter.spooling:  # a spool keeps them (_at_exit)
                left += exporter.stats().queued
    for exporter, _ in waiting:
        exporter.raise_errors()
    return finished, left


def flush(timeout: float | None = 10.0) -> bool:
    """Send every record queued so far. True when all were handled within ``timeout`` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    return _flush_all(lambda exporter: deadline)[0]


def stats() -> Stats:
    """Counts of the records this process handed to Sightline (see :class:`Stats`)."""
    total = Stats()
    for exporter in _exporters.all():
        total += exporter.stats()
    return total


def _at_exit() -> None:
    started = time.monotonic()
    try:
        finished, left = _flush_all(lambda exporter: started + exporter.dest.exit_timeout)
        grace = time.monotonic() + _EXIT_GRACE
        for exporter in _exporters.all():
            if exporter.spooling:
                kept = exporter._spool_rest(grace)
                if kept:
                    logger.warning(
                        "sightline: %d records were not delivered before exit; kept in the spool %s",
                        kept,
                        exporter.dest.spool_dir,
                    )
    except Exception as exc:  # an exit must never fail because of Sightline
        logger.error("sightline: internal error while flushing at exit", exc_info=exc)
        return
    if not finished and (left or not any(exporter.spooling for exporter in _exporters.all())):
        logger.warning(
            "sightline: %d records were not delivered before exit (deadline %.1fs)",
            left,
            max(exporter.dest.exit_timeout for exporter in _exporters.all()),
        )


def reset(transport: httpx.BaseTransport | None = None, timeout: float = 5.0) -> None:
    """Stop every exporter (flushing first); the next records start fresh ones. For tests.

    ``transport`` is the HTTP transport of the exporters made from now on (e.g. ``httpx.MockTransport``).
    """
    with _exporters.lock:
        old = _exporters.all()
        _exporters.transport = transport
        _exporters.last = None
        _exporters.by_dest = {e.dest: Exporter(e.dest, e._encode, transport) for e in old}
    deadline = time.monotonic() + timeout
    for exporter in old:
        exporter.close(max(0.0, deadline - time.monotonic()))
