"""The stored body of a generation: what pydantic would write, written faster."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from sightline.schema import Generation
from sightline.store import tables as t
from sightline.store.engine.dialect import no_nul
from sightline.store.generations.records import Scope, generation_json, generation_rows, to_us
from sightline.store.tables.generations import GenerationColumn

RECORDS: list[dict[str, Any]] = [
    {"model": {"id": "gpt-4o"}},
    {
        "id": "01A1FCB0-1B3B-7E51-BA51-58606C072D72",
        "timestamp": "2026-01-01T00:00:00.5+02:00",
        "model": {"id": "m", "name": None, "provider": "openai"},
        "input": {"content": [{"role": "user", "content": None, "x": {"y": None}}]},
        "output": {"content": {"a": None}, "alternatives": [{"content": "x", "score": None}]},
        "parameters": {"temperature": None, "seed": None, "foo": {"b": None}},
        "usage": {"promptTokens": 3, "cost": None},
        "template": {"name": "t", "chat": [{"role": "user", "content": None, "extra": None}], "params": {}},
        "error": {"type": "RateLimitError", "message": "slow down", "statusCode": None},
        "metadata": {"gone": None, "n": 1.5, "u": {"type": "url", "url": "https://x", "text": "x"}},
        "runId": "r",
        "chatId": "c",
        "stepIndex": 0,
        "status": "error",
        "cacheHit": True,
        "feedback": {"rating": 3},
    },
    {"model": {"id": "m"}, "output": {"type": "json", "content": "nul\u0000 é ☃ \U0001f600"}},
    {"model": {"id": "m"}, "input": {"content": {"big": 10**30}}},  # beyond 64 bits: pydantic writes it
]


@pytest.mark.parametrize("index", range(len(RECORDS)))
def test_the_body_is_what_pydantic_writes(index: int) -> None:
    gen = Generation.model_validate(RECORDS[index])
    before = gen.model_dump()
    # pydantic's text, with escaped NUL made U+FFFD as in every stored body
    expected = no_nul(gen.model_dump_json(by_alias=True, exclude_none=True, exclude={"feedback"}))
    written = generation_json(gen)
    assert orjson.loads(written) == orjson.loads(expected)
    assert list(orjson.loads(written)) == list(orjson.loads(expected))  # the same order of fields
    assert gen.model_dump() == before  # the record itself is left as it was


def test_rows_are_in_the_order_of_the_tables_columns() -> None:
    gen = Generation.model_validate(RECORDS[1])
    row, prompt = generation_rows(gen, Scope(7, "dev"))
    named = dict(zip(t.GENERATION_COLUMNS, row, strict=True))
    assert named["project_id"] == 7 and named["environment"] == "dev"
    assert named["model_id"] == "m" and named["provider"] == "openai"
    assert named["run_id"] == "r" and named["chat_id"] == "c" and named["step_index"] == 0
    assert named["template_name"] == "t" and named["error_type"] == "RateLimitError"
    assert named["cache_hit"] is True and named["cost"] == 0.0 and named["total_tokens"] == 3
    assert named["ts_us"] == to_us(datetime(2025, 12, 31, 22, 0, 0, 500_000, tzinfo=UTC))
    assert named["status"] == "error" and named["output_type"] == "text"
    assert (named["prompt_tokens"], named["completion_tokens"], named["latency_ms"]) == (3, 0, 0.0)
    assert len(named["template_version"]) == 16
    unset = (
        "user_id",
        "session_id",
        "cost_saved",
        "ttft_ms",
        "feedback_rating",
        "feedback_score",
        "feedback_thumbs",
    )
    assert [named[c] for c in unset] == [None] * len(unset)
    assert orjson.loads(named["body"])["id"] == named["id"] == "01a1fcb0-1b3b-7e51-ba51-58606c072d72"
    assert prompt is not None
    assert dict(zip(t.PROMPT_COLUMNS, prompt, strict=True))["name"] == "t"


def test_escaped_nul_is_stored_as_the_replacement_character() -> None:
    row, _ = generation_rows(Generation.model_validate(RECORDS[2]), Scope(1, "prod"))
    body = row[t.GENERATION_AT["body"]]
    assert "\\u0000" not in body
    assert orjson.loads(body)["output"]["content"] == "nul\ufffd é ☃ \U0001f600"


def test_the_named_positions_are_the_tables_columns() -> None:
    assert [c.name for c in GenerationColumn] == list(t.generations.c.keys()) == list(t.GENERATION_COLUMNS)
    assert [int(c) for c in GenerationColumn] == list(range(len(t.generations.c)))
    row, _ = generation_rows(Generation.model_validate(RECORDS[1]), Scope(7, "dev"))
    assert len(row) == len(GenerationColumn)
    assert row[GenerationColumn.project_id] == 7 and row[GenerationColumn.model_id] == "m"
