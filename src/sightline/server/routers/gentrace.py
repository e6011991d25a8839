"""``POST /api/v1/run``: a pipeline run as gentrace-py 0.x submits it (and ``/api/v1/pipeline-run``, older).

A gentrace client pointed at Sightline (``gentrace.init(api_key=KEY, host="http://HOST:PORT/api")``)
sends its runs here with the Sightline API key as its Bearer token. :mod:`sightline.compat.gentrace_wire`
turns the body into a Run with its steps and Generations; they are written in one operation, so a run
is stored whole or not at all, and the answer (``200 {"pipelineRunId": id}``, what the client reads)
comes once it is committed. A refused step is listed in ``refusedSteps`` beside the id; its neighbours
are stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import Connection

from ...compat.gentrace_wire import Translated, translate
from ...schema import Run
from ...store.generations.ingest import InsertGenerations, PreparedGeneration, UpsertRun, prepare_generation
from ...store.generations.records import Scope
from ..auth import ApiKeyDep
from ..body import read_json
from ..responses import JSON

router = APIRouter(tags=["compatibility"])


@dataclass(slots=True)
class RunWithGenerations:
    """A run and its generations in one write operation: one transaction, so never half-written.

    The run goes first, so its generations take its userId as they are inserted.
    """

    scope: Scope
    run: Run
    generations: list[PreparedGeneration]
    size: int = 1

    def apply(self, conn: Connection) -> bool:
        created = UpsertRun(self.scope, self.run).apply(conn)
        if self.generations:
            InsertGenerations(self.scope, self.generations).apply(conn)
        return created


async def _submit(request: Request, key: Any, *, legacy: bool) -> JSON:
    body = await read_json(request)
    settings = request.app.state.settings
    found: Translated = translate(
        body,
        legacy=legacy,
        max_metadata_keys=settings.max_metadata_keys,
        max_steps=settings.max_ingest_items,
    )
    prepared = [prepare_generation(gen, key.scope) for gen in found.generations]
    op = RunWithGenerations(key.scope, found.run, prepared, size=1 + len(prepared))
    await request.app.state.db.writer.write(op)
    metrics = request.app.state.metrics
    metrics.ingest_items.labels("run", "accepted").inc()
    if prepared:
        metrics.ingest_items.labels("generation", "accepted").inc(len(prepared))
    answer: dict[str, Any] = {"pipelineRunId": found.run.id}
    if found.refused:
        metrics.ingest_items.labels("run_step", "refused").inc(len(found.refused))
        answer["refusedSteps"] = [
            {
                "index": r.index,
                "error": {"type": r.error.error_type, "message": r.error.message, "field": r.error.field},
            }
            for r in found.refused
        ]
    return JSON(answer)


@router.post("/api/v1/run", summary="Record a pipeline run as gentrace-py 0.x submits it")
async def run(request: Request, key: ApiKeyDep) -> JSON:
    """Body: ``{"id", "slug", "metadata", "previousRunId", "stepRuns": [...]}`` (gentrace's ``RunRequest``).

    Answers ``200 {"pipelineRunId"}`` once committed (with ``refusedSteps`` when some steps were
    refused), or a 4xx naming the field when the run itself is malformed; nothing is then written.
    """
    return await _submit(request, key, legacy=False)


@router.post("/api/v1/pipeline-run", summary="Record a pipeline run in the older gentrace shape")
async def pipeline_run(request: Request, key: ApiKeyDep) -> JSON:
    """Body: ``{"name"|"slug"|"pipelineId", "id"?, "stepRuns": [{"provider": {...}, ...}]}``.

    Answers as ``/api/v1/run``; a run without an id gets one."""
    return await _submit(request, key, legacy=True)
