"""Ingestion: ``POST /api/ingest`` (a batch of generations, runs and feedback) and ``POST /api/generations``.

A request is validated, flattened to rows and handed to the writer; the answer comes only once
the writer has committed it (together with whatever other requests were waiting: group commit).

These are the busiest endpoints, so they are plain Starlette routes: FastAPI's per-request
dependency solving cost more than validating a generation. Their OpenAPI description, with the
request bodies' JSON schemas, is added by :func:`openapi_paths`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.routing import Route

from ...errors import InvalidInput, SightlineError
from ...schema import Feedback, Generation, IngestBatch, Run
from ...store.engine.writer import WriteOp
from ...store.generations.ingest import AddFeedback, InsertGenerations, UpsertRun, prepare_generation
from ..auth import require_key
from ..body import read_raw
from ..errors import validation_message
from ..responses import JSON

_MAX_BATCH = 10_000


def _error(exc: SightlineError) -> dict[str, Any]:
    error: dict[str, Any] = {"type": exc.error_type, "message": exc.message}
    if exc.field:
        error["field"] = exc.field
    return error


def _invalid(exc: ValidationError, prefix: str = "") -> InvalidInput:
    message, field = validation_message(exc, prefix)
    return InvalidInput(message, field=field)


def _parse_error(exc: ValidationError) -> InvalidInput | None:
    """The error for a body that is not JSON at all (pydantic's parse step), if that is what failed."""
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return InvalidInput(f"body is not valid JSON: {err.get('msg', '')}".rstrip(": "))
    return None


def _items(raw: bytes) -> list[tuple[int, str, Any]]:
    """Each item of a batch validated: the model, or the error that names what is wrong.

    A batch whose every item is valid (nearly all of them) is validated in one pass, by pydantic
    straight from the JSON text: no Python objects are made for the text itself. Any other is
    validated again item by item (:func:`_each_item`), so that each refused item gets its own error
    and the valid ones are still written. (The one call holds the GIL about a millisecond per 100
    items: ``sightline serve`` runs its writer in a process of its own wherever it has two cores.)
    """
    try:
        batch = IngestBatch.model_validate_json(raw).batch
    except ValidationError:
        return _each_item(raw)
    return [(i, item.type, item.body) for i, item in enumerate(batch)]


def _each_item(raw: bytes) -> list[tuple[int, str, Any]]:
    """Each item of a batch validated on its own: the model, or the error that names what is wrong."""
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"body is not valid JSON: {exc}") from None
    batch = payload.get("batch") if isinstance(payload, dict) else None
    if not isinstance(batch, list):
        raise InvalidInput("batch: expected a list of {type, body} items", field="batch")
    if len(batch) > _MAX_BATCH:
        raise InvalidInput(f"batch: at most {_MAX_BATCH} items per request, got {len(batch)}", field="batch")
    items: list[tuple[int, str, Any]] = []
    for i, item in enumerate(batch):
        kind = item.get("type") if isinstance(item, dict) else None
        body = item.get("body") if isinstance(item, dict) else None
        try:
            if kind not in _MODELS:
                raise InvalidInput(
                    f"batch[{i}].type: expected generation, run or feedback, got {kind!r}",
                    field=f"batch[{i}].type",
                )
            if not isinstance(body, dict):
                raise InvalidInput(f"batch[{i}].body: expected an object", field=f"batch[{i}].body")
            try:
                items.append((i, kind, _MODELS[kind].model_validate(body)))
            except ValidationError as exc:
                raise _invalid(exc) from None
        except SightlineError as exc:
            items.append((i, str(kind), exc))
    return items


_MODELS: dict[str, type[Generation] | type[Run] | type[Feedback]] = {
    "generation": Generation,
    "run": Run,
    "feedback": Feedback,
}


async def ingest(request: Request) -> JSON:
    """Body: ``{"batch": [{"type": "generation"|"run"|"feedback", "body": {...}}]}``.

    Answers 200 with one result per item (``status`` 201 new, 200 already there, 202 feedback
    waiting for its generation, 4xx refused with ``error``) once the accepted items are committed.
    """
    started = time.perf_counter()
    key = await require_key(request)
    raw = await read_raw(request)
    if not raw.strip():
        raise InvalidInput("request body is empty; expected JSON")
    items = _items(raw)
    results: list[dict[str, Any]] = [{"index": i} for i in range(len(items))]
    scope = key.scope
    gens, gen_indexes = [], []
    ops: list[tuple[list[int], WriteOp]] = []
    metrics = request.app.state.metrics
    for i, kind, value in items:
        try:
            if isinstance(value, SightlineError):
                raise value
            if isinstance(value, Generation):
                gens.append(prepare_generation(value, scope))
                gen_indexes.append(i)
                results[i]["id"] = value.id
            elif isinstance(value, Run):
                ops.append(([i], UpsertRun(scope, value)))
                results[i]["id"] = value.id
            else:
                if value.generation_id is None:
                    raise InvalidInput("generationId: required for feedback", field="generationId")
                ops.append(([i], AddFeedback(scope, value.generation_id, value)))
                results[i]["id"] = value.generation_id
        except SightlineError as exc:
            results[i].update(status=exc.status_code, error=_error(exc))
            metrics.ingest_items.labels(kind if kind in _MODELS else "unknown", "refused").inc()
    if gens:
        ops.insert(0, (gen_indexes, InsertGenerations(scope, gens)))
    writer = request.app.state.db.writer
    outcomes = await asyncio.gather(*[writer.write(op) for _, op in ops])
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


async def create_generation(request: Request) -> JSON:
    """Body: one Generation. 201 ``{"id"}`` once committed; 200 when that id was already recorded."""
    started = time.perf_counter()
    key = await require_key(request)
    raw = await read_raw(request)
    if not raw.strip():
        raise InvalidInput("request body is empty; expected JSON")
    try:
        gen = Generation.model_validate_json(raw)
    except ValidationError as exc:
        raise _parse_error(exc) or _invalid(exc) from None
    op = InsertGenerations(key.scope, [prepare_generation(gen, key.scope)])
    (created,) = await request.app.state.db.writer.write(op)
    metrics = request.app.state.metrics
    metrics.ingested.inc(int(created))
    metrics.ingest_items.labels("generation", "accepted").inc()
    metrics.ingest_latency.observe(time.perf_counter() - started)
    return JSON({"id": gen.id, "created": created}, status_code=201 if created else 200)


routes = [
    Route("/api/ingest", ingest, methods=["POST"]),
    Route("/api/generations", create_generation, methods=["POST"]),
]

_ERROR = {"description": 'Refused: `{"error": {"type", "message", "field"}}`; nothing was written'}


def openapi_paths(schemas: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI path items of these routes; the models' JSON schemas are added to ``schemas``."""
    for model in (IngestBatch, Generation):
        found = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        schemas.update(found.pop("$defs", {}))
        schemas[model.__name__] = found

    def body(name: str) -> dict[str, Any]:
        return {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
        }

    security: list[dict[str, list[str]]] = [{"HTTPBearer": []}]
    return {
        "/api/ingest": {
            "post": {
                "tags": ["ingest"],
                "summary": "Ingest a batch of generations, runs and feedback",
                "description": ingest.__doc__,
                "requestBody": body("IngestBatch"),
                "security": security,
                "responses": {"200": {"description": "One result per item, once committed"}, "4XX": _ERROR},
            }
        },
        "/api/generations": {
            "post": {
                "tags": ["ingest"],
                "summary": "Record one generation",
                "description": create_generation.__doc__,
                "requestBody": body("Generation"),
                "security": security,
                "responses": {
                    "201": {"description": 'Committed: `{"id", "created": true}`'},
                    "200": {"description": "That id was already recorded: nothing changed"},
                    "4XX": _ERROR,
                },
            }
        },
    }
