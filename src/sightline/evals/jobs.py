"""Evaluation's background jobs, on the one job queue: online evaluation and backfills.

- ``evals.online`` (periodic, every ``eval_poll_seconds``): each enabled evaluator with a filter
  takes the generations written since its cursor (``store.evals.pending_generations``), keeps its
  sample of them (the same ones whoever asks: ``sampled``), scores them and records the scores with
  the cursor's move in one transaction (``AdvanceEvaluator``). Nothing is evaluated twice: a batch is
  recorded only from where it started. Nothing is lost: a judge whose provider is down
  (``RetryLater``) leaves the cursor where it was, and that evaluator waits (doubling, up to
  ``job_backoff_seconds * 2**6``) before it is tried again; the others go on.
- ``evals.experiment``: a prompt version or pipeline over a dataset (``evals.experiments``).
- ``evals.backfill`` (``POST /api/evaluators/{id}/run``, ``sightline eval run``): one evaluator over
  the past generations a filter matches, newest first, a batch at a time; each batch's scores commit
  with the job's progress (``done``, ``total``, ``errors`` and where it got to), so a job that is
  stopped resumes where it was and writes nothing twice.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import Conflict, InvalidInput, NotFound
from ..jobs import Handlers
from ..store.evals import RecordScores
from ..store.evals.evaluators import (
    AdvanceEvaluator,
    Evaluator,
    get_evaluator,
    online_evaluators,
    pending_generations,
)
from ..store.generations.reads.export import count
from ..store.generations.reads.queries import list_generations
from ..store.jobs import Job, Outcome, Progress, PruneKind, others_running
from .evaluator import Runnable, Services, sampled
from .experiments import EXPERIMENT_KIND, run_experiment
from .judge import JUDGE_TAG, RetryLater

__all__ = ["BACKFILL_KIND", "ONLINE_KIND", "Evaluations", "add_handlers"]

log = logging.getLogger(__name__)

ONLINE_KIND = "evals.online"
BACKFILL_KIND = "evals.backfill"
_ONLINE_BUDGET = 30.0  # seconds one online job works before it leaves the rest to the next period
_KEEP_ONLINE = 3600  # seconds the succeeded online jobs are kept (one a period)
_SIDE_BY_SIDE = 4  # evaluators an online job runs at once


@dataclass
class _Waiting:
    """Evaluators whose judge could not be asked: when each may be tried again (this process)."""

    backoff: float
    until: dict[int, tuple[int, float]] = field(default_factory=dict)  # id -> (failures, time)

    def ready(self, evaluator_id: int, now: float) -> bool:
        return self.until.get(evaluator_id, (0, 0.0))[1] <= now

    def failed(self, evaluator_id: int, now: float) -> float:
        failures = self.until.get(evaluator_id, (0, 0.0))[0] + 1
        delay = float(self.backoff * 2 ** min(failures - 1, 6))
        self.until[evaluator_id] = (failures, now + delay)
        return delay

    def succeeded(self, evaluator_id: int) -> None:
        self.until.pop(evaluator_id, None)


class Evaluations:
    """The handlers of evaluation's jobs in one process."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.waiting = _Waiting(services.settings.job_backoff_seconds)

    async def online(self, job: Job) -> Any:
        """Evaluate what was written since each online evaluator's cursor."""
        db, settings = self.services.db, self.services.settings
        now_us = time.time_ns() // 1000
        if await self.services.db.read_in_thread(
            lambda conn: others_running(conn, ONLINE_KIND, job.id, now_us)
        ):
            return None  # the previous period's job is still at it
        started = time.monotonic()
        evaluated = errors = 0
        waiting: list[str] = []
        side_by_side = asyncio.Semaphore(_SIDE_BY_SIDE)

        async def one(evaluator: Evaluator) -> None:
            nonlocal evaluated, errors
            async with side_by_side:
                if time.monotonic() - started > _ONLINE_BUDGET:
                    return  # the next period's job takes it
                try:
                    done, failed = await self._catch_up(evaluator, started)
                except RetryLater as exc:
                    delay = self.waiting.failed(evaluator.id, time.monotonic())
                    log.warning("evaluator %d waits %.0f s: %s", evaluator.id, delay, exc)
                    waiting.append(evaluator.name)
                    return
                except (InvalidInput, NotFound) as exc:  # its prompt or function is gone: say so, go on
                    log.warning("evaluator %d cannot run: %s", evaluator.id, exc.message)
                    return
                self.waiting.succeeded(evaluator.id)
                evaluated, errors = evaluated + done, errors + failed

        ready = []
        for evaluator in await self.services.db.read_in_thread(online_evaluators):
            if self.waiting.ready(evaluator.id, time.monotonic()):
                ready.append(evaluator)
            else:
                waiting.append(evaluator.name)
        # Evaluators side by side: one's batch is read while another's is scored or written.
        await asyncio.gather(*(one(evaluator) for evaluator in ready))
        await db.writer.write(PruneKind(ONLINE_KIND, now_us - _KEEP_ONLINE * 1_000_000))
        return Outcome(
            {"evaluated": evaluated, "errors": errors, "waiting": waiting, "batch": settings.eval_batch}
        )

    async def _catch_up(self, evaluator: Evaluator, started: float) -> tuple[int, int]:
        """Evaluate batch after batch from the evaluator's cursor. A batch's write goes to the writer
        while the next batch is read and scored (the writer takes them in order; the cursor check of
        each write keeps a batch from being recorded twice)."""
        settings = self.services.settings
        runnable = await self.services.db.read_in_thread(lambda conn: Runnable.load(conn, evaluator))
        done = failed = 0
        cursor = evaluator.cursor_seq
        writing: asyncio.Future[Any] | None = None
        try:
            while time.monotonic() - started <= _ONLINE_BUDGET:
                current = replace(evaluator, cursor_seq=cursor)
                records, to_seq = await self.services.db.read_in_thread(
                    functools.partial(pending_generations, evaluator=current, limit=settings.eval_batch)
                )
                if to_seq == cursor:
                    break
                chosen = [r for r in records if sampled(evaluator.id, r["id"], evaluator.sample_rate)]
                rows = await runnable.score(self.services, chosen) if chosen else []
                if writing is not None:
                    await writing  # the batch before: recorded (or Conflict: another worker has it)
                writing = self.services.db.writer.write(AdvanceEvaluator(evaluator.id, cursor, to_seq, rows))
                done += len(rows)
                failed += sum(1 for r in rows if r["error"] is not None)
                cursor = to_seq
            if writing is not None:
                await writing
        except Conflict:
            return done, failed  # another worker recorded these batches: it carries on from there
        return done, failed

    async def backfill(self, job: Job) -> Any:
        """Run one evaluator over the generations a filter matches, resuming where an earlier attempt
        got to."""
        payload, project_id = job.payload, job.project_id
        if project_id is None:
            raise InvalidInput("a backfill belongs to a project")
        evaluator = await self.services.db.read_in_thread(
            lambda conn: get_evaluator(conn, project_id, int(payload["evaluatorId"]))
        )
        runnable = await self.services.db.read_in_thread(lambda conn: Runnable.load(conn, evaluator))
        flt: dict[str, Any] = {"$and": [payload.get("filter") or {}, {"metadata.tags": {"$ne": JUDGE_TAG}}]}
        progress: dict[str, Any] = dict(job.result or {})
        progress.setdefault("evaluatorId", evaluator.id)
        progress.setdefault("evaluatorVersion", evaluator.version)
        progress.setdefault("done", 0)
        progress.setdefault("errors", 0)
        if progress.get("total") is None:
            progress["total"] = await asyncio.to_thread(count, self.services.db, project_id, flt)
            await self.services.db.writer.write(Progress(job.id, job.worker, progress))
        while not progress.get("finished"):
            after = progress.get("after")
            page = await self.services.db.read_in_thread(
                functools.partial(
                    list_generations,
                    project_id=project_id,
                    filter=flt,
                    limit=self.services.settings.eval_batch,
                    cursor=after,
                )
            )
            rows = await runnable.score(self.services, page.data) if page.data else []
            progress["done"] += len(page.data)
            progress["errors"] += sum(1 for r in rows if r["error"] is not None)
            progress["after"] = page.next_cursor
            progress["finished"] = page.next_cursor is None
            await self.services.db.writer.write(
                Progress(job.id, job.worker, dict(progress), RecordScores(rows))
            )
        return Outcome(progress)


def add_handlers(handlers: Handlers, services: Services) -> Evaluations:
    """Register evaluation's kinds of job (online evaluation runs every ``eval_poll_seconds``)."""
    evaluations = Evaluations(services)
    handlers.add(ONLINE_KIND, evaluations.online, every=services.settings.eval_poll_seconds, max_attempts=1)
    handlers.add(BACKFILL_KIND, evaluations.backfill)
    handlers.add(EXPERIMENT_KIND, functools.partial(run_experiment, services))
    return evaluations
