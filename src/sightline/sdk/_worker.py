"""The one background exporter of a process.

The caller's thread only appends to a bounded deque (:func:`submit`); a daemon thread wakes every
``flush_interval`` (or as soon as a batch is full), turns the records into wire JSON (redacting when
asked), batches them per destination by count and bytes, and hands each batch to the sender.

What does not fit in the queue is dropped, counted in :func:`stats` and logged at most once a minute.
At process exit pending records are flushed with a deadline, so a dead server never hangs the exit;
after ``os.fork()`` the child starts its own exporter with an empty queue.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from sightline.sdk._config import Destination, SightlineConfig
from sightline.sdk._guard import Throttle, logger, under_pytest
from sightline.sdk._sender import Counters, Sender

__all__ = ["Exporter", "Stats", "configure", "flush", "get_exporter", "reset", "stats", "submit"]

FLUSH = "flush"
Encoder = Callable[[Destination, str, Any], tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Stats:
    """Counts of the records this process handed to Sightline.

    ``queued``: waiting to be sent; ``sent``: acknowledged by the server; ``dropped``: did not fit in
    the queue; ``rejected``: refused by the server (4xx); ``failed``: given up on after retrying or
    lost to an internal error; ``retries``: attempts repeated; ``batches``: requests answered.
    """

    queued: int = 0
    sent: int = 0
    dropped: int = 0
    rejected: int = 0
    failed: int = 0
    retries: int = 0
    batches: int = 0
    internal_errors: int = 0

    def as_dict(self) -> dict[str, int]:
        """These counts as a plain dict."""
        return asdict(self)


@dataclass
class _Knobs:
    max_queue: int = 20_000
    interval: float = 0.5
    exit_timeout: float = 5.0
    wake_at: int = 200


class Exporter:
    """A bounded queue drained by one daemon thread."""

    def __init__(self, knobs: _Knobs, encode: Encoder, transport: httpx.BaseTransport | None = None) -> None:
        self.knobs = knobs
        self._encode = encode
        self._queue: deque[tuple[Destination | None, str, Any]] = deque()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._counters = Counters()
        self._drop_lock = threading.Lock()
        self._throttle = Throttle()
        self._errors: list[BaseException] = []
        self._sender = Sender(self._counters, self._sleep, transport)
        self._thread = threading.Thread(target=self._run, name="sightline-exporter", daemon=True)
        self._thread.start()

    # -- caller side -------------------------------------------------------------------------

    def submit(self, dest: Destination, kind: str, payload: Any) -> None:
        """Queue one record without blocking; drop (and count) it when the queue is full."""
        queue = self._queue
        if len(queue) >= self.knobs.max_queue:
            self._drop()
            return
        queue.append((dest, kind, payload))
        if len(queue) >= self.knobs.wake_at and not self._wake.is_set():
            self._wake.set()

    def _drop(self) -> None:
        with self._drop_lock:
            self._counters.dropped += 1
        if self._throttle.ready("overflow"):
            logger.warning(
                "sightline: the queue is full (%d records); dropping records until the server catches up",
                self.knobs.max_queue,
            )

    def flush(self, timeout: float | None) -> bool:
        """Send everything queued so far; True when it was all handled before ``timeout`` seconds."""
        done = threading.Event()
        self._queue.append((None, FLUSH, done))
        self._wake.set()
        finished = done.wait(timeout)
        if self._errors and under_pytest():
            raise self._errors.pop(0)
        return finished

    def stats(self) -> Stats:
        """The counts so far."""
        c = self._counters
        queued = sum(1 for item in list(self._queue) if item[1] != FLUSH)
        return Stats(queued, c.sent, c.dropped, c.rejected, c.failed, c.retries, c.batches, c.internal_errors)

    def close(self, timeout: float) -> bool:
        """Flush with a deadline and stop the thread."""
        finished = self.flush(timeout)
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout=1.0)
        return finished

    # -- worker side -------------------------------------------------------------------------

    def _sleep(self, seconds: float) -> bool:
        return not self._closing.wait(seconds)

    def _run(self) -> None:
        while not self._closing.is_set():
            self._wake.wait(self.knobs.interval)
            self._wake.clear()
            try:
                self._drain()
            except Exception as exc:  # a bug here must not kill the thread
                self._internal("draining the queue", exc)
        self._sender.close()

    def _drain(self) -> None:
        pending: dict[Destination, tuple[list[bytes], list[int]]] = {}
        queue = self._queue
        while queue:
            dest, kind, payload = queue.popleft()
            if kind == FLUSH:
                self._send_all(pending)
                payload.set()
                continue
            assert dest is not None
            # Hand the GIL back between records so that a caller whose response just arrived is not
            # kept waiting for a whole batch to be encoded.
            time.sleep(0)
            try:
                endpoint, data = self._encode(dest, kind, payload)
            except Exception as exc:
                self._counters.failed += 1
                self._internal(f"encoding a {kind}", exc)
                continue
            if endpoint == "feedback":
                self._sender.feedback(dest, data)
                continue
            parts, size = pending.setdefault(dest, ([], [0]))
            parts.append(data)
            size[0] += len(data) + 1
            if len(parts) >= dest.max_batch_items or size[0] >= dest.max_batch_bytes:
                del pending[dest]
                self._sender.ingest(dest, parts)
        self._send_all(pending)

    def _send_all(self, pending: dict[Destination, tuple[list[bytes], list[int]]]) -> None:
        for dest, (parts, _) in list(pending.items()):
            del pending[dest]
            self._sender.ingest(dest, parts)

    def _internal(self, doing: str, exc: BaseException) -> None:
        self._counters.internal_errors += 1
        if under_pytest():
            self._errors.append(exc)
        logger.error("sightline: internal error while %s", doing, exc_info=exc)


# -- the process-wide exporter ---------------------------------------------------------------

_lock = threading.Lock()
_exporter: Exporter | None = None
_knobs = _Knobs()
_configured = False
_hooks = False
_encoder: Encoder | None = None
_transport: httpx.BaseTransport | None = None


def configure(config: SightlineConfig, encoder: Encoder) -> None:
    """Take the exporter settings of a client's configuration (largest queue, shortest interval…)."""
    global _configured, _encoder
    with _lock:
        _encoder = encoder
        if not _configured:
            _knobs.max_queue = config.max_queue_size
            _knobs.interval = config.flush_interval
            _knobs.exit_timeout = config.exit_timeout
            _knobs.wake_at = config.max_batch_items
            _configured = True
        else:
            _knobs.max_queue = max(_knobs.max_queue, config.max_queue_size)
            _knobs.interval = min(_knobs.interval, config.flush_interval)
            _knobs.exit_timeout = max(_knobs.exit_timeout, config.exit_timeout)
            _knobs.wake_at = min(_knobs.wake_at, config.max_batch_items)


def _at_exit() -> None:
    exporter = _exporter
    if exporter is not None and not exporter.flush(exporter.knobs.exit_timeout):
        logger.warning(
            "sightline: %d records were not delivered before exit (deadline %.1fs)",
            exporter.stats().queued,
            exporter.knobs.exit_timeout,
        )


def _after_fork_in_child() -> None:
    # The parent's thread does not exist here and its queue is the parent's to send.
    global _exporter, _lock
    _exporter = None
    _lock = threading.Lock()


def get_exporter() -> Exporter:
    """The process's exporter, started on first use."""
    global _exporter, _hooks
    exporter = _exporter
    if exporter is not None:
        return exporter
    with _lock:
        if _exporter is None:
            if _encoder is None:
                raise RuntimeError("sightline: the exporter is used before any client configured it")
            if not _hooks:
                atexit.register(_at_exit)
                if hasattr(os, "register_at_fork"):
                    os.register_at_fork(after_in_child=_after_fork_in_child)
                _hooks = True
            _exporter = Exporter(_knobs, _encoder, _transport)
        return _exporter


def submit(dest: Destination, kind: str, payload: Any) -> None:
    """Queue one record for ``dest`` (never blocks, never raises on a full queue)."""
    (_exporter or get_exporter()).submit(dest, kind, payload)


def flush(timeout: float | None = 10.0) -> bool:
    """Send every record queued so far. True when all were handled within ``timeout`` seconds."""
    exporter = _exporter
    return True if exporter is None else exporter.flush(timeout)


def stats() -> Stats:
    """Counts of the records this process handed to Sightline (see :class:`Stats`)."""
    exporter = _exporter
    return Stats() if exporter is None else exporter.stats()


def reset(transport: httpx.BaseTransport | None = None, timeout: float = 5.0) -> None:
    """Stop the exporter (flushing first) so the next record starts a fresh one. For tests."""
    global _exporter, _transport
    with _lock:
        exporter, _exporter = _exporter, None
        _transport = transport
    if exporter is not None:
        exporter.close(timeout)
