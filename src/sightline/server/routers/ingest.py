"""Ingestion: ``POST /api/ingest`` (a batch of generations, runs, feedback and scores) and
``POST /api/generations``.

A request is validated, flattened to rows and handed to the writer; the answer comes only once
the writer has committed it (together with whatever other requests were waiting: group commit).

These are the busiest endpoints, so they are plain Starlette routes: FastAPI's per-request
dependency solving cost more than validating a generation. Their OpenAPI description, with the
request bodies' JSON schemas, is added by :func:`openapi_paths`.

**Memory per request is bounded by its body, not by what the body unfolds into.** A generation's
Python form (its model, typed metadata, rows, metadata rows) is tens of times the size of its JSON:
one valid 11.5 MB batch of 10,000 generations x 100 metadata keys, unfolded whole, took server and
writer from 130 MiB to 1.2 GiB (``bench/bench_ingest_memory.py``). So a batch is cut into chunks of
about :data:`_CHUNK_BYTES` of JSON (``msgspec`` finds where each item's text starts and ends without
building it), and each chunk is validated, flattened and sent to the writer while the chunk before
it is being written: at most two chunks are unfolded at any moment, whatever the batch's size. A
batch of one chunk (what the SDK sends) goes as before, in one validation pass and one operation.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from typing import Any

import msgspec
from pydantic import ValidationError
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.routing import Route

from ...errors import InvalidInput, PayloadTooLarge, SightlineError
from ...schema import Feedback, Generation, IngestBatch, Run, Score
from ...store.engine.writer import WriteOp
from ...store.evals import RecordScores, score_row
from ...store.generations.ingest import AddFeedback, InsertGenerations, UpsertRuns, prepare_generation
from ...store.generations.records import Scope
from ..auth import require_key
from ..body import read_buffer, read_raw
from ..errors import validation_message
from ..memory import release_free_memory
from ..responses import JSON

# JSON text per chunk of a batch (see the module's text): a batch of 100 generations from the SDK
# (~150 KB) is one chunk; a chunk unfolds into ~10-20 MB at the most (100 metadata keys a generation).
_CHUNK_BYTES = 256 * 1024
# A batch bigger than this leaves freed memory worth handing back once answered (server/memory.py).
_TRIM_BYTES = 4 * 1024 * 1024

Item = tuple[int, str, Any]  # (index in the batch, its type, the validated model or the error)


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


class _Envelope(msgspec.Struct, forbid_unknown_fields=True):
    """An ingest body with each item left as its JSON text (``Raw``: a slice of the body, not a copy)."""

    batch: list[msgspec.Raw]


_UNKNOWN = re.compile(r"unknown field `(.*)`")


def _split(raw: bytes | bytearray, limit: int) -> list[msgspec.Raw]:
    """The items of a batch, each as its JSON text; 413 over ``limit`` items, 400 for a wrong envelope."""
    try:
        items = msgspec.json.decode(raw, type=_Envelope).batch
    except msgspec.ValidationError as exc:  # valid JSON of another shape
        unknown = _UNKNOWN.search(str(exc))
        if unknown:
            name = unknown.group(1)
            raise InvalidInput(
                f'{name}: unknown field (the body is {{"batch": [...]}})', field=name
            ) from None
        raise InvalidInput(
            'batch: expected a list of {type, body} items, as {"batch": [...]}', field="batch"
        ) from None
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"body is not valid JSON: {exc}") from None
    if len(items) > limit:
        raise PayloadTooLarge(
            f"batch: at most {limit} items per request (setting max_ingest_items), got {len(items)}",
            field="batch",
        )
    return items


def _chunks(items: list[msgspec.Raw]) -> Iterator[tuple[int, list[msgspec.Raw]]]:
    """``(index of the first, items)`` of consecutive items of about ``_CHUNK_BYTES`` of JSON each."""
    start, size = 0, 0
    for i, item in enumerate(items):
        size += len(item)
        if size >= _CHUNK_BYTES:
            yield start, items[start : i + 1]
            start, size = i + 1, 0
    if start < len(items):
        yield start, items[start:]


def _validate(raw: bytes | bytearray, start: int, context: dict[str, Any]) -> list[Item]:
    """Each item of a batch (``raw``, its items numbered from ``start``) validated: the model, or the
    error that names what is wrong.

    A batch whose every item is valid (nearly all of them) is validated in one pass, by pydantic
    straight from the JSON text: no Python objects are made for the text itself. Any other is
    validated again item by item (:func:`_each_item`), so that each refused item gets its own error
    and the valid ones are still written. (The one call holds the GIL about a millisecond per 100
    items: ``sightline serve`` runs its writer in a process of its own wherever it has two cores.)
    """
    try:
        batch = IngestBatch.model_validate_json(raw, context=context).batch
    except ValidationError:
        return _each_item(raw, start, context)
    return [(start + i, item.type, item.body) for i, item in enumerate(batch)]


def _each_item(raw: bytes | bytearray, start: int, context: dict[str, Any]) -> list[Item]:
    """Each item of a batch validated on its own: the model, or the error that names what is wrong."""
    # The envelope was checked by _split. (msgspec, not orjson: integers past 64 bits stay integers.)
    batch = msgspec.json.decode(raw)["batch"]
    items: list[Item] = []
    for i, item in enumerate(batch, start):
        kind = item.get("type") if isinstance(item, dict) else None
        body = item.get("body") if isinstance(item, dict) else None
        if not isinstance(kind, str) or kind not in _MODELS:
            error = InvalidInput(
                f"batch[{i}].type: expected generation, run, feedback or score, got {kind!r}",
                field=f"batch[{i}].type",
            )
            items.append((i, "unknown", error))
        elif not isinstance(body, dict):
            items.append(
                (i, kind, InvalidInput(f"batch[{i}].body: expected an object", field=f"batch[{i}].body"))
            )
        else:
            try:
                items.append((i, kind, _MODELS[kind].model_validate(body, context=context)))
            except ValidationError as exc:
                items.append((i, kind, _invalid(exc)))
    return items


_MODELS: dict[str, type[Generation] | type[Run] | type[Feedback] | type[Score]] = {
    "generation": Generation,
    "run": Run,
    "feedback": Feedback,
    "score": Score,
}


def _operations(
    items: list[Item], scope: Scope, results: list[dict[str, Any]], metrics: Any
) -> list[tuple[list[int], WriteOp]]:
    """The write operations of validated items (their generations in one); refusals go in ``results``."""
    gens, gen_indexes = [], []
    runs: list[Run] = []
    run_indexes: list[int] = []
    scores: list[dict[str, Any]] = []
    score_indexes: list[int] = []
    ops: list[tuple[list[int], WriteOp]] = []
    for i, kind, value in items:
        try:
            if isinstance(value, SightlineError):
                raise value
            if isinstance(value, Generation):
                gens.append(prepare_generation(value, scope))
                gen_indexes.append(i)
                results[i]["id"] = value.id
            elif isinstance(value, Run):
                runs.append(value)
                run_indexes.append(i)
                results[i]["id"] = value.id
            elif isinstance(value, Score):
                scores.append(score_row(value, scope))
                score_indexes.append(i)
                results[i]["id"] = value.generation_id or value.run_id
            else:
                if value.generation_id is None:
                    raise InvalidInput("generationId: required for feedback", field="generationId")
                ops.append(([i], AddFeedback(scope, value.generation_id, value)))
                results[i]["id"] = value.generation_id
        except SightlineError as exc:
            results[i].update(status=exc.status_code, error=_error(exc))
            metrics.ingest_items.labels(kind, "refused").inc()
    if scores:  # after the generations and runs of the batch, which they may name
        ops.append((score_indexes, RecordScores(scores)))
    if runs:  # before the feedback, as they came; read and written in one go
        ops.insert(0, (run_indexes, UpsertRuns(scope, runs)))
    if gens:
        ops.insert(0, (gen_indexes, InsertGenerations(scope, gens)))
    return ops


Sent = list[tuple[list[int], WriteOp, "asyncio.Future[Any]"]]


async def _answers(sent: Sent, results: list[dict[str, Any]], metrics: Any) -> None:
    """Wait for the operations ``sent`` to the writer to commit, and put their outcomes in ``results``."""
    outcomes = await asyncio.gather(*[future for _, _, future in sent])
    for (indexes, op, _), outcome in zip(sent, outcomes, strict=True):
        if isinstance(op, InsertGenerations):
            for i, created in zip(indexes, outcome, strict=True):
                results[i]["status"] = 201 if created else 200
            metrics.ingested.inc(sum(outcome))
            metrics.ingest_items.labels("generation", "accepted").inc(len(indexes))
        elif isinstance(op, UpsertRuns):
            for i, created in zip(indexes, outcome, strict=True):
                results[i]["status"] = 201 if created else 200
            metrics.ingest_items.labels("run", "accepted").inc(len(indexes))
        elif isinstance(op, RecordScores):
            for i, found in zip(indexes, outcome, strict=True):
                results[i]["status"] = 201 if found else 202
            metrics.ingest_items.labels("score", "accepted").inc(len(indexes))
        else:
            results[indexes[0]]["status"] = 201 if outcome else 202
            metrics.ingest_items.labels("feedback", "accepted").inc()


async def ingest(request: Request) -> JSON:
    """Body: ``{"batch": [{"type": "generation"|"run"|"feedback"|"score", "body": {...}}]}``.

    Answers 200 with one result per item (``status`` 201 new, 200 already there, 202 feedback or a
    score waiting for its generation, 4xx refused with ``error``) once the accepted items are committed.
    More items than the setting ``max_ingest_items`` is refused whole (413).
    """
    started = time.perf_counter()
    key = await require_key(request)
    await request.app.state.gateway.limiter.check(key, budgets=False)  # the key's requests per minute
    raw = await read_buffer(request)  # the body once, not a second time joined from its parts
    if not raw or raw.isspace():
        raise InvalidInput("request body is empty; expected JSON")
    settings = request.app.state.settings
    items = _split(raw, settings.max_ingest_items)
    context = {"max_metadata_keys": settings.max_metadata_keys}
    results: list[dict[str, Any]] = [{"index": i} for i in range(len(items))]
    writer = request.app.state.db.writer
    metrics = request.app.state.metrics
    sent: Sent = []
    for start, chunk in _chunks(items):
        # One chunk is the whole batch (the usual case): validated from the body as it came.
        text = raw if len(chunk) == len(items) else b'{"batch":[' + b",".join(chunk) + b"]}"
        ops = _operations(_validate(text, start, context), key.scope, results, metrics)
        del text
        # The writer takes this chunk while the one before it is awaited (see the module's text).
        sending: Sent = [(indexes, op, writer.write(op)) for indexes, op in ops]
        del ops
        await _answers(sent, results, metrics)
        sent = sending
    await _answers(sent, results, metrics)
    metrics.ingest_latency.observe(time.perf_counter() - started)
    trim = BackgroundTask(release_free_memory) if len(raw) > _TRIM_BYTES else None
    return JSON({"results": results}, background=trim)


async def create_generation(request: Request) -> JSON:
    """Body: one Generation. 201 ``{"id"}`` once committed; 200 when that id was already recorded."""
    started = time.perf_counter()
    key = await require_key(request)
    await request.app.state.gateway.limiter.check(key, budgets=False)
    raw = await read_raw(request)
    if not raw.strip():
        raise InvalidInput("request body is empty; expected JSON")
    context = {"max_metadata_keys": request.app.state.settings.max_metadata_keys}
    try:
        gen = Generation.model_validate_json(raw, context=context)
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
                "summary": "Ingest a batch of generations, runs, feedback and scores",
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
