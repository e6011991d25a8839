"""Recording gateway calls through the same group-commit writer as ingestion.

The event loop only appends a finished call to a list; every few milliseconds the list goes to
the writer as one operation. The writer thread then builds, validates and prices the Generations
(:mod:`.capture`) and inserts them with :class:`~sightline.store.ingest.InsertGenerations`, so the
caller's answer never waits for any of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection

from ..errors import SightlineError
from ..schema import Generation, Run
from ..store.ingest import InsertGenerations, PreparedGeneration, UpsertRun, prepare_generation
from ..store.records import Scope
from ..store.writer import Writer
from .call import Call
from .capture import generation_body

__all__ = ["RecordCalls", "Recorder"]

log = logging.getLogger(__name__)


def _generation(call: Call) -> Generation | None:
    body = generation_body(call)
    try:
        return Generation.model_validate(body)
    except ValidationError as first:
        # A request the upstream refused may carry parameters our schema refuses too (temperature -1,
        # messages without a role): the call is still recorded, without them.
        body.pop("parameters", None)
        body.pop("template", None)
        try:
            return Generation.model_validate(body)
        except ValidationError:
            log.warning("gateway call %s not recorded: %s", call.generation_id, first.errors()[:1])
            return None


@dataclass(slots=True)
class RecordCalls:
    """A write operation: record finished calls of one project/environment as Generations."""

    scope: Scope
    calls: list[Call]
    size: int = 0

    def __post_init__(self) -> None:
        self.size = len(self.calls)

    def apply(self, conn: Connection) -> list[bool]:
        prepared: list[PreparedGeneration] = []
        for call in self.calls:
            gen = _generation(call)
            if gen is None:
                continue
            try:
                prepared.append(prepare_generation(gen, self.scope))
            except SightlineError as exc:
                log.warning("gateway call %s not recorded: %s", call.generation_id, exc.message)
        if not prepared:
            return []
        created: list[bool] = InsertGenerations(self.scope, prepared).apply(conn)
        return created


class Recorder:
    """Collects finished calls on the event loop and hands them to the writer in batches."""

    def __init__(self, writer: Writer, *, interval: float = 0.005, batch: int = 512) -> None:
        self._writer = writer
        self._interval = interval
        self._batch = batch
        self._pending: dict[Scope, list[Call]] = {}
        self._count = 0
        self._timer: asyncio.TimerHandle | None = None
        self._runs: OrderedDict[tuple[int, str, str], None] = OrderedDict()
        self.recorded = 0
        self.failed = 0

    def add(self, scope: Scope, call: Call) -> None:
        """Record ``call`` (finished, and never changed again) soon."""
        calls = self._pending.get(scope)
        if calls is None:
            calls = self._pending[scope] = []
        calls.append(call)
        self._count += 1
        if self._count >= self._batch:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._interval, self.flush)

    def announce_run(self, scope: Scope, run_id: str, user_id: str) -> None:
        """Make sure run ``run_id`` exists and belongs to ``user_id`` (the run owns the user id)."""
        key = (scope.project_id, run_id, user_id)
        if key in self._runs:
            return
        self._runs[key] = None
        if len(self._runs) > 10_000:
            self._runs.popitem(last=False)
        # Sent before the calls that follow it, so the writer applies it first.
        self.flush()
        self._submit(UpsertRun(scope, Run(id=run_id, user_id=user_id, status="running")))

    def flush(self) -> None:
        """Hand every pending call to the writer now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending, self._count = self._pending, {}, 0
        for scope, calls in pending.items():
            self._submit(RecordCalls(scope, calls))

    def _submit(self, op: RecordCalls | UpsertRun) -> None:
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
