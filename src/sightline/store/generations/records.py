"""Turning wire records into rows and rows back into wire records."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from ... import templating
from ...errors import InvalidInput
from ...schema import Feedback, Generation, Run, metadata_value_text
from ..engine.dialect import no_nul
from .pricing import price

__all__ = [
    "OWN_KEYS",
    "Scope",
    "feedback_row",
    "run_wide",
    "from_us",
    "generation_rows",
    "metadata_rows",
    "run_row",
    "template_version",
    "to_us",
]

_MAX_VALUE = 1000  # metadata values longer than this are indexed by their start

# Metadata that places one call in a trace (OpenTelemetry's span ids): it stays the call's own, never
# joins its run's metadata, which every generation of the run shares.
OWN_KEYS = frozenset({"spanId", "parentSpanId"})


def run_wide(metadata: dict[str, Any]) -> dict[str, Any]:
    """``metadata`` without the keys that belong to one call (:data:`OWN_KEYS`)."""
    if OWN_KEYS.isdisjoint(metadata):
        return metadata
    return {k: v for k, v in metadata.items() if k not in OWN_KEYS}


_MAX_INT = 2**31 - 1  # 32-bit token columns
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Scope:
    """Who writes or reads: one project, and the environment of the API key in use (and that key's
    id, which the spend per key is counted under; 0 where no key wrote)."""

    project_id: int
    environment: str
    key_id: int = 0


def to_us(value: datetime) -> int:
    """Microseconds since the Unix epoch."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MICROSECOND


def from_us(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, UTC)


def iso(value: int) -> str:
    """ISO 8601 UTC text of a microsecond timestamp, as records carry it on the wire."""
    return from_us(value).isoformat().replace("+00:00", "Z")


_CACHED_TEMPLATE_CHARS = 16_384  # longer templates are hashed each time: the cache's memory stays bounded


def template_version(content_json: str) -> str:
    """The version of a template (:func:`sightline.templating.template_version`) from its content as
    JSON text (``{"chat": [...]}`` and/or ``{"text": "..."}``, not its parameters).

    Cached on that text: an application sends the same few templates over and over. Only templates
    of up to ``_CACHED_TEMPLATE_CHARS`` are kept, so clients sending many big ones cannot fill memory."""
    if len(content_json) > _CACHED_TEMPLATE_CHARS:
        return _version_of(content_json)
    return _cached_version_of(content_json)


def _version_of(content_json: str) -> str:
    content = orjson.loads(content_json)
    return templating.template_version(content.get("chat"), content.get("text"))


_cached_version_of = functools.lru_cache(maxsize=4096)(_version_of)


def metadata_rows(
    generation_id: str, project_id: int, ts_us: int, metadata: dict[str, Any]
) -> list[tuple[Any, ...]]:
    """One row per metadata key, for indexed ``metadata.<key>=value`` filters (tags: one per tag),
    as tuples in the order of ``tables.METADATA_COLUMNS``."""
    rows: list[tuple[Any, ...]] = []
    for key, value in metadata.items():
        if key == "tags":
            rows.extend((generation_id, f"tags:{tag}"[:200], project_id, "true", ts_us) for tag in value)
        else:
            rows.append((generation_id, key, project_id, metadata_value_text(value)[:_MAX_VALUE], ts_us))
    return rows


def generation_rows(gen: Generation, scope: Scope) -> tuple[list[Any], tuple[Any, ...] | None]:
    """The ``generations`` row of a record (priced when it came without a cost), and its prompt version.

    The row is a list in the table's column order (``tables.GENERATION_COLUMNS``) with the body as
    JSON text, and the prompt version a tuple in ``tables.PROMPT_COLUMNS`` order: what the insert statements
    take, and what pickles cheaply to a writer process. Lists, not dicts, because ingest makes tens of
    thousands a second. The record is completed in place (cost, template version) and serialised once
    into the body; feedback is stored apart and left out. The latest feedback's columns stay empty:
    the writer fills them from feedback that arrived first. (Text bound for indexed columns was
    checked by the schema: bounded, without NUL.)
    """
    # The parts of a record are typed dicts (see schema.py): their defaults are filled in here, so the
    # stored body says them explicitly.
    model, usage, perf = gen.model, gen.usage, gen.performance
    gen.input.setdefault("type", "text")
    output_type = gen.output.setdefault("type", "text")
    latency = perf.setdefault("latency", 0.0)
    prompt_tokens = usage.setdefault("promptTokens", 0)
    completion_tokens = usage.setdefault("completionTokens", 0)
    total_tokens = usage.get("totalTokens")
    if total_tokens is None:
        total_tokens = usage["totalTokens"] = prompt_tokens + completion_tokens
        if total_tokens > _MAX_INT:
            raise InvalidInput(
                f"usage.totalTokens: promptTokens + completionTokens is over {_MAX_INT}",
                field="usage.totalTokens",
            )
    cost = usage.get("cost")
    if cost is None:
        cost = (
            0.0
            if gen.cache_hit
            else price(
                model["id"],
                model.get("provider"),
                prompt_tokens,
                completion_tokens,
                usage.get("cachedTokens"),
            )
        )
        if cost is not None:
            usage["cost"] = cost
    if cost is not None and usage.get("currency") is None:
        usage["currency"] = "USD"
    ts_us = to_us(gen.timestamp)
    template, prompt = gen.template, None
    name = version = None
    if template is not None:
        name, version = template.get("name"), template.get("version")
        if template.get("chat") is not None or template.get("text") is not None:
            try:
                content = no_nul(
                    orjson.dumps(
                        {k: template[k] for k in ("chat", "text") if template.get(k) is not None}
                    ).decode()
                )
            except orjson.JSONEncodeError:  # the only thing JSON parsed from a request can hold
                raise InvalidInput("template: holds an integer past 64 bits", field="template") from None
            # The version is the content's hash, whoever computed it: one a client sent (an older
            # SDK's, say) is replaced, so the same template is one version however it was recorded.
            version = template["version"] = template_version(content)
            if name:
                prompt = (scope.project_id, name, version, ts_us, content)
    meta = gen.metadata
    row = [
        gen.id,
        scope.project_id,
        scope.environment,
        ts_us,
        model["id"],
        model.get("provider"),
        meta.get("userId"),
        meta.get("sessionId"),
        gen.run_id,
        gen.chat_id,
        gen.step_index,
        name,
        version,
        gen.status,
        gen.error.type if gen.error else None,
        gen.cache_hit,
        output_type,
        prompt_tokens,
        completion_tokens,
        total_tokens,
        cost,
        usage.get("costSaved"),
        latency,
        perf.get("timeToFirstToken"),
        None,  # feedback_rating
        None,  # feedback_score
        None,  # feedback_thumbs
        generation_json(gen),
        None,  # seq: numbered by the writer as it inserts (sequence.number_rows)
    ]
    return row, prompt


def _given(part: Mapping[str, Any], nested: str | None = None) -> Mapping[str, Any]:
    """``part`` without its None fields, nor those of the dicts listed under ``nested``; most parts
    have none: then ``part`` itself."""
    items = part.get(nested) if nested else None
    if nested and items and any(None in item.values() for item in items):
        part = {**part, nested: [_given(item) for item in items]}
    if None not in part.values():
        return part
    return {k: v for k, v in part.items() if v is not None}


def generation_json(gen: Generation) -> str:
    """The record as stored and answered: camelCase, fields that are None left out, without feedback.

    What ``gen.model_dump_json(by_alias=True, exclude_none=True, exclude={"feedback"})`` writes, for
    less (ingest writes tens of thousands a second): the parts are typed dicts already in their wire
    form, so orjson writes them once their None fields are dropped. A fast path: docs/fast-paths.md
    has its figure, and ``tests/test_fast_paths.py`` checks it writes what pydantic writes.
    """
    record: dict[str, Any] = {
        "id": gen.id,
        "timestamp": gen.timestamp,
        "model": _given(gen.model),
        "input": _given(gen.input),
        "output": _given(gen.output, "alternatives"),
        "parameters": _given(gen.parameters),
        "usage": _given(gen.usage),
        "metadata": gen.metadata,
        "performance": _given(gen.performance),
    }
    if gen.template is not None:
        record["template"] = _given(gen.template, "chat")
    for key, value in (("runId", gen.run_id), ("chatId", gen.chat_id), ("stepIndex", gen.step_index)):
        if value is not None:
            record[key] = value
    record["status"] = gen.status
    if gen.error is not None:
        record["error"] = gen.error.wire()
    record["cacheHit"] = gen.cache_hit
    try:
        text = orjson.dumps(record, option=orjson.OPT_UTC_Z).decode()
    except orjson.JSONEncodeError:  # an integer beyond 64 bits in free-form content: pydantic writes it
        text = gen.model_dump_json(by_alias=True, exclude_none=True, exclude={"feedback"})
    return no_nul(text)


def feedback_row(fb: Feedback, generation_id: str, project_id: int) -> dict[str, Any]:
    body = fb.wire()
    body["generationId"] = generation_id
    return {
        "project_id": project_id,
        "generation_id": generation_id,
        "ts_us": to_us(fb.timestamp),
        "rating": fb.rating,
        "score": fb.score,
        "thumbs": fb.thumbs,
        "user_id": fb.user_id,
        "body": body,
    }


def run_row(run: Run, scope: Scope) -> dict[str, Any]:
    body = run.wire()
    return {
        "project_id": scope.project_id,
        "id": run.id,
        "environment": scope.environment,
        "pipeline_slug": run.pipeline_slug,
        "user_id": run.user_id,
        # A step that failed fails its run (the model calls' failures are counted as they arrive).
        "status": "error" if any(step.status == "error" for step in run.steps or ()) else run.status,
        "started_us": to_us(run.started_at),
        "ended_us": to_us(run.ended_at) if run.ended_at else None,
        "body": {k: body[k] for k in ("metadata", "steps", "error", "output") if k in body},
    }
