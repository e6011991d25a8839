"""The stored body of a generation: what pydantic would write, written faster."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sightline.schema import Generation
from sightline.store.records import generation_json

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
    expected = gen.model_dump_json(by_alias=True, exclude_none=True, exclude={"feedback"})
    written = generation_json(gen)
    assert orjson.loads(written) == orjson.loads(expected)
    assert list(orjson.loads(written)) == list(orjson.loads(expected))  # the same order of fields
    assert gen.model_dump() == before  # the record itself is left as it was
