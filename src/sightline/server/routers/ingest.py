"""Ingestion: ``POST /api/ingest`` (a batch of generations, runs and feedback) and ``POST /api/generations``.

A request is validated, flattened to rows and handed to the writer; the answer comes only once
the writer has committed it (together with whatever other requests were waiting: group commit).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError

from ...errors import InvalidInput, SightlineError
from ...schema import Feedback, Generation, Run
from ...store.ingest import AddFeedback, InsertGenerations, UpsertRun, prepare_generation
from ...store.writer import WriteOp
from ..auth import ApiKeyDep
from ..body import read_json
from ..errors import validation_message
from ..responses import JSON

router = APIRouter(tags=["ingest"])

_MAX_BATCH = 10_000


def _error(exc: SightlineError) -> dict[str, Any]:
    error: dict[str, Any] = {"type": exc.error_type, "message": exc.message}
    if exc.field:
        error["field"] = exc.field
    return error


def _invalid(exc: ValidationError, prefix: str = "") -> InvalidInput:
    message, field = validation_message(exc, prefix)
    return InvalidInput(message, field=field)


@router.post("/api/ingest", summary="Ingest a batch of generations, runs and feedback")
async def ingest(request: Request, key: ApiKeyDep) -> JSON:
    """Body: ``{"batch": [{"type": "generation"|"run"|"feedback", "body": {...}}]}``.

    Answers 200 with one result per item (``status`` 201 new, 200 already there, 202 feedback
    waiting for its generation, 4xx refused with ``error``) once the accepted items are committed.
    """
    started = time.perf_counter()
    payload = await read_json(request)
    batch = payload.get("batch")
    if not isinstance(batch, list):
        raise InvalidInput("batch: expected a list of {type, body} items", field="batch")
    if len(batch) > _MAX_BATCH:
        raise InvalidInput(f"batch: at most {_MAX_BATCH} items per request, got {len(batch)}", field="batch")
    results: list[dict[str, Any]] = [{"index": i} for i in range(len(batch))]
    scope = key.scope
    gens, gen_indexes = [], []
    ops: list[tuple[list[int], WriteOp]] = []
    metrics = request.app.state.metrics
    for i, item in enumerate(batch):
        kind = item.get("type") if isinstance(item, dict) else None
        body = item.get("body") if isinstance(item, dict) else None
        try:
            if kind not in ("generation", "run", "feedback"):
                raise InvalidInput(
                    f"batch[{i}].type: expected generation, run or feedback, got {kind!r}",
                    field=f"batch[{i}].type",
                )
            if not isinstance(body, dict):
                raise InvalidInput(f"batch[{i}].body: expected an object", field=f"batch[{i}].body")
            try:
                if kind == "generation":
                    gen = Generation.model_validate(body)
                    gens.append(prepare_generation(gen, scope))
                    gen_indexes.append(i)
                    results[i]["id"] = gen.id
                elif kind == "run":
                    run = Run.model_validate(body)
                    ops.append(([i], UpsertRun(scope, run)))
                    results[i]["id"] = run.id
                else:
                    fb = Feedback.model_validate(body)
                    if fb.generation_id is None:
                        raise InvalidInput("generationId: required for feedback", field="generationId")
                    ops.append(([i], AddFeedback(scope, fb.generation_id, fb)))
                    results[i]["id"] = fb.generation_id
            except ValidationError as exc:
                raise _invalid(exc) from None
        except SightlineError as exc:
            results[i].update(status=exc.status_code, error=_error(exc))
            metrics.ingest_items.labels(
                kind if kind in ("generation", "run", "feedback") else "unknown", "refused"
            ).inc()
    if gens:
        ops.insert(0, (gen_indexes, InsertGenerations(scope, gens)))
    writer = request.app.state.db.writer
    outcomes = await asyncio.gather(*(writer.write(op) for _, op in ops))
    for (indexes, op), outcome in zip(ops, outcomes, strict=True):
        if isinstance(op, InsertGenerations):
            for i, created in zip(indexes, outcome, strict=True):
                results[i]["status"] = 201 if created else 200
            metrics.ingested.inc(sum(outcome))
            metrics.ingest_items.labels("generation", "accepted").inc(len(indexes))
        elif isinstance(op, UpsertRun):
            results[indexes[0]]["status"] = 201 if outcome else 200
            metrics.ingest_items.labels("run", "accepted").inc()
        else:
            results[indexes[0]]["status"] = 201 if outcome else 202
            metrics.ingest_items.labels("feedback", "accepted").inc()
    metrics.ingest_latency.observe(time.perf_counter() - started)
    return JSON({"results": results})


@router.post("/api/generations", status_code=201, summary="Record one generation")
async def create_generation(request: Request, key: ApiKeyDep) -> JSON:
    """Body: one Generation. 201 ``{"id"}`` once committed; 200 when that id was already recorded."""
    started = time.perf_counter()
    body = await read_json(request)
    try:
        gen = Generation.model_validate(body)
    except ValidationError as exc:
        raise _invalid(exc) from None
    op = InsertGenerations(key.scope, [prepare_generation(gen, key.scope)])
    (created,) = await request.app.state.db.writer.write(op)
    metrics = request.app.state.metrics
    metrics.ingested.inc(int(created))
    metrics.ingest_items.labels("generation", "accepted").inc()
    metrics.ingest_latency.observe(time.perf_counter() - started)
    return JSON({"id": gen.id, "created": created}, status_code=201 if created else 200)
