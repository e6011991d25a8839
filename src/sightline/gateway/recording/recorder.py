"""Recording gateway calls through the same group-commit writer as ingestion.

After a call's answer has gone out, the call is queued here. The event loop turns queued calls
into Generations in short slices, one slice per turn of the loop (a call takes ~30 µs), so a request
arriving meanwhile waits for one slice at most; then the prepared rows go to the writer as one
:class:`~sightline.store.generations.ingest.InsertGenerations` per project and environment:
``interval`` seconds after the first of them, or ``quick_interval`` when the gateway is lightly loaded.

Why two intervals: a commit shares the core with the event loop, and a request that arrives during
one waits longer. With few requests in flight (one client waiting on each answer, say), small
commits every few ms keep that wait short (at one connection: p99 +2.1 ms against +3.4 ms). Under
load, fewer and bigger commits cost less a call (the ceiling is a quarter higher).

Why not prepare them on the writer thread: on a busy server the writer would then hold the GIL
for milliseconds at a time (building and validating a batch is pure Python), and the event loop,
ready to answer the next request, would wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from pydantic import ValidationError

from ...errors import SightlineError
from ...schema import Generation, Run
from ...store.engine.writer import QueuedWriter, WriteOp
from ...store.generations.ingest import InsertGenerations, PreparedGeneration, UpsertRun, prepare_generation
from ...store.generations.records import Scope
from ..call import Call
from .capture import generation_body

__all__ = ["Recorder", "prepare"]

log = logging.getLogger(__name__)

_SLICE = 0.0002  # seconds of preparing per loop turn (one call takes ~30 µs)
_SLICE_BUSY = 0.002  # ... when more than _BACKLOG calls wait
_BACKLOG = 256
_LIGHT_LOAD = 2  # requests in flight, at most, for the quick interval


def prepare(call: Call, scope: Scope) -> PreparedGeneration | None:
    """The rows recording ``call``; ``None`` (logged) when it cannot be recorded."""
    body = generation_body(call)
    try:
        gen = Generation.model_validate(body)
    except ValidationError as first:
        # A request the upstream refused may carry parameters our schema refuses too (temperature -1,
        # messages without a role): the call is still recorded, without them.
        body.pop("parameters", None)
        body.pop("template", None)
        try:
            gen = Generation.model_validate(body)
        except ValidationError:
            # The field and the problem only: the input itself may hold a prompt.
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in first.errors()[:3])
            log.warning("gateway call %s not recorded: %s", call.generation_id, problems)
            return None
    try:
        return prepare_generation(gen, scope)
    except SightlineError as exc:
        log.warning("gateway call %s not recorded: %s", call.generation_id, exc.message)
        return None


class Recorder:
    """Turns finished calls into Generations between requests and hands them to the writer in batches."""

    def __init__(
        self,
        writer: QueuedWriter,
        *,
        interval: float = 0.02,
        quick_interval: float = 0.005,
        in_flight: Callable[[], int] = lambda: 0,
        batch: int = 1000,
    ) -> None:
        self._writer = writer
        self._interval = interval
        self._quick_interval = quick_interval
        self._in_flight = in_flight  # requests the gateway is answering now
        self._batch = batch
        self._queue: deque[tuple[Scope, Call]] = deque()
        self._prepared: dict[Scope, list[PreparedGeneration]] = {}
        self._count = 0
        self._working = False
        self._timer: asyncio.TimerHandle | None = None
        self._runs: OrderedDict[tuple[int, str, str], None] = OrderedDict()
        self.recorded = 0
        self.failed = 0

    def add(self, scope: Scope, call: Call) -> None:
        """Record ``call`` (finished, and never changed again) soon."""
        self._queue.append((scope, call))
        if not self._working:
            self._working = True
            asyncio.get_running_loop().call_soon(self._work)

    def _work(self) -> None:
        # A slice of preparing per turn of the event loop, so requests that arrive meanwhile wait
        # for one slice at most; a longer slice when calls pile up, so recording keeps pace.
        queue = self._queue
        deadline = time.perf_counter() + (_SLICE_BUSY if len(queue) > _BACKLOG else _SLICE)
        while queue:
            scope, call = queue.popleft()
            prepared = prepare(call, scope)
            if prepared is not None:
                rows = self._prepared.get(scope)
                if rows is None:
                    rows = self._prepared[scope] = []
                rows.append(prepared)
                self._count += 1
            if time.perf_counter() > deadline:
                break
        if self._count >= self._batch:
            self.flush()
        elif self._timer is None and self._count:
            light = self._in_flight() <= _LIGHT_LOAD
            delay = self._quick_interval if light else self._interval
            self._timer = asyncio.get_running_loop().call_later(delay, self.flush)
        if queue:
            asyncio.get_running_loop().call_soon(self._work)
        else:
            self._working = False

    def announce_run(self, scope: Scope, run_id: str, user_id: str) -> None:
        """Make sure run ``run_id`` exists and belongs to ``user_id`` (the run owns the user id)."""
        key = (scope.project_id, run_id, user_id)
        if key in self._runs:
            return
        self._runs[key] = None
        if len(self._runs) > 10_000:
            self._runs.popitem(last=False)
        # Queued now, so the writer applies it before the calls that follow it.
        self._submit(UpsertRun(scope, Run(id=run_id, user_id=user_id, status="running")))

    def record_run(self, scope: Scope, run: Run) -> None:
        """Record ``run`` (a pipeline's, with its steps) soon, as the calls are: in the background."""
        self._submit(UpsertRun(scope, run))

    def flush(self) -> None:
        """Hand every prepared call to the writer now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        prepared, self._prepared, self._count = self._prepared, {}, 0
        for scope, rows in prepared.items():
            self._submit(InsertGenerations(scope, rows))

    def close(self) -> None:
        """Prepare what is still queued and hand everything to the writer (at shutdown)."""
        while self._queue:
            scope, call = self._queue.popleft()
            prepared = prepare(call, scope)
            if prepared is not None:
                self._prepared.setdefault(scope, []).append(prepared)
        self.flush()

    def _submit(self, op: WriteOp) -> None:
        try:
            future = self._writer.submit(op)
        except SightlineError as exc:
            self.failed += op.size
            log.error("gateway calls not recorded: %s", exc.message)
            return
        future.add_done_callback(self._done)

    def _done(self, future: Future[Any]) -> None:
        error = future.exception()
        if error is not None:
            self.failed += 1
            log.error("recording gateway calls failed: %s", error)
        elif isinstance(future.result(), list):
            self.recorded += sum(future.result())
