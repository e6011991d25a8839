"""Turning wire records into rows and rows back into wire records."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from ..errors import InvalidInput
from ..schema import Feedback, Generation, Run, metadata_value_text
from .dialect import RawJson
from .pricing import price

__all__ = [
    "Scope",
    "feedback_row",
    "from_us",
    "generation_rows",
    "metadata_rows",
    "run_row",
    "template_version",
    "to_us",
]

_MAX_VALUE = 1000
_MAX_INT = 2**31 - 1  # 32-bit token columns  # metadata values longer than this are indexed by their start


@dataclass(frozen=True, slots=True)
class Scope:
    """Who writes or reads: one project, and the environment of the API key in use."""

    project_id: int
    environment: str


def to_us(value: datetime) -> int:
    """Microseconds since the Unix epoch."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, UTC)


def iso(value: int) -> str:
    """ISO 8601 UTC text of a microsecond timestamp, as records carry it on the wire."""
    return from_us(value).isoformat().replace("+00:00", "Z")


def template_version(content_json: str) -> str:
    """A short hash of a template's content (its chat messages or text as JSON, not its parameters)."""
    return hashlib.sha256(content_json.encode()).hexdigest()[:12]


def metadata_rows(
    generation_id: str, project_id: int, ts_us: int, metadata: dict[str, Any]
) -> list[dict[str, Any]]:
    """One row per metadata key, for indexed ``metadata.<key>=value`` filters (tags: one per tag)."""
    rows = []
    for key, value in metadata.items():
        if key == "tags":
            for tag in value:
                rows.append(
                    {
                        "generation_id": generation_id,
                        "key": f"tags:{tag}"[:200],
                        "project_id": project_id,
                        "value": "true",
                        "ts_us": ts_us,
                    }
                )
            continue
        rows.append(
            {
                "generation_id": generation_id,
                "key": key,
                "project_id": project_id,
                "value": metadata_value_text(value)[:_MAX_VALUE],
                "ts_us": ts_us,
            }
        )
    return rows


def generation_rows(gen: Generation, scope: Scope) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The ``generations`` row of a record (priced when it came without a cost), and its prompt version.

    The record is completed in place (cost, template version) and serialised once, by pydantic,
    into the row's ``body``; feedback is stored apart and left out.
    """
    # The parts of a record are typed dicts (see schema.py): their defaults are filled in here, so the
    # stored body says them explicitly.
    model, usage, perf = gen.model, gen.usage, gen.performance
    gen.input.setdefault("type", "text")
    gen.output.setdefault("type", "text")
    perf.setdefault("latency", 0.0)
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
    if usage.get("cost") is None:
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
    if usage.get("cost") is not None and usage.get("currency") is None:
        usage["currency"] = "USD"
    template, prompt = gen.template, None
    if template is not None and (template.get("chat") is not None or template.get("text") is not None):
        content = orjson.dumps(
            {k: template[k] for k in ("chat", "text") if template.get(k) is not None}
        ).decode()
        if template.get("version") is None:
            template["version"] = template_version(content)
        if template.get("name"):
            prompt = {
                "project_id": scope.project_id,
                "name": template["name"],
                "version": template["version"],
                "created_us": to_us(gen.timestamp),
                "body": RawJson(content),
            }
    meta = gen.metadata
    row = {
        "id": gen.id,
        "project_id": scope.project_id,
        "environment": scope.environment,
        "ts_us": to_us(gen.timestamp),
        "model_id": model["id"],
        "provider": model.get("provider"),
        "user_id": meta.get("userId"),
        "session_id": meta.get("sessionId"),
        "run_id": gen.run_id,
        "chat_id": gen.chat_id,
        "step_index": gen.step_index,
        "template_name": template.get("name") if template else None,
        "template_version": template.get("version") if template else None,
        "status": gen.status,
        "error_type": gen.error.type if gen.error else None,
        "cache_hit": gen.cache_hit,
        "output_type": gen.output["type"],
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": total_tokens,
        "cost": usage.get("cost"),
        "cost_saved": usage.get("costSaved"),
        "latency_ms": perf["latency"],
        "ttft_ms": perf.get("timeToFirstToken"),
        "feedback_rating": None,
        "feedback_score": None,
        "feedback_thumbs": None,
        "body": RawJson(gen.model_dump_json(by_alias=True, exclude_none=True, exclude={"feedback"})),
    }
    for column in _TEXT_COLUMNS:
        value = row[column]
        if isinstance(value, str) and "\x00" in value:
            raise InvalidInput(
                f"{_TEXT_COLUMNS[column]}: must not contain NUL characters", field=_TEXT_COLUMNS[column]
            )
    return row, prompt


# Indexed text columns and the wire field each comes from (PostgreSQL text cannot hold NUL).
_TEXT_COLUMNS = {
    "model_id": "model.id",
    "provider": "model.provider",
    "user_id": "metadata.userId",
    "session_id": "metadata.sessionId",
    "run_id": "runId",
    "chat_id": "chatId",
    "template_name": "template.name",
    "template_version": "template.version",
    "error_type": "error.type",
}


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
        "status": run.status,
        "started_us": to_us(run.started_at),
        "ended_us": to_us(run.ended_at) if run.ended_at else None,
        "body": {k: body[k] for k in ("metadata", "steps", "error") if k in body},
    }
