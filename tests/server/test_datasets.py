"""Datasets through the HTTP API: by hand, by upload, from generations (their output or their user's
better response), versioned, exported as fine-tuning chat JSONL (checked line by line), JSONL and CSV."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from tests.conftest import Api
from tests.server.test_ingest import generation

_ROLES = {"system", "user", "assistant", "developer", "tool"}


def check_chat_line(line: str) -> dict[str, Any]:
    """One line of OpenAI's fine-tuning chat format, as its validator reads it."""
    example = json.loads(line)
    assert set(example) == {"messages"}
    messages = example["messages"]
    assert isinstance(messages, list) and len(messages) >= 2
    for message in messages:
        assert message["role"] in _ROLES and isinstance(message["content"], str) and message["content"]
    assert messages[-1]["role"] == "assistant"
    assert any(m["role"] == "user" for m in messages[:-1])
    return example


async def _export(api: Api, name: str, fmt: str, **extra: Any) -> str:
    r = await api.http.post(f"/api/datasets/{name}/export", json={"format": fmt, **extra})
    assert r.status_code == 200, r.text
    return r.text


async def test_a_dataset_by_hand_and_by_upload_with_versions(api: Api) -> None:
    r = await api.http.post(
        "/api/datasets",
        json={"name": "capitals", "items": [{"input": "Capital of France?", "expectedOutput": "Paris"}]},
    )
    assert r.status_code == 201, r.text
    assert (r.json()["version"], r.json()["items"]) == (1, 1)
    peru = {
        "input": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of Peru?"},
        ],
        "expectedOutput": "Lima",
    }
    jsonl = (json.dumps(peru) + "\n" + json.dumps({"input": "Capital of Chad?"}) + "\n").encode()
    r = await api.http.post(
        "/api/datasets/capitals/items", content=jsonl, headers={"content-type": "application/x-ndjson"}
    )
    assert (r.status_code, r.json()["version"], r.json()["items"]) == (201, 2, 3)
    sheet = 'input,expectedOutput,metadata\n"Capital of Mali?",=HYPERLINK("x"),"{""level"": 2}"\n'
    r = await api.http.post(
        "/api/datasets/capitals/items", content=sheet, headers={"content-type": "text/csv"}
    )
    assert (r.status_code, r.json()["version"], r.json()["items"]) == (201, 3, 4)
    chat = [check_chat_line(line) for line in (await _export(api, "capitals", "openai-chat")).splitlines()]
    assert len(chat) == 3  # the item without an expected answer teaches nothing
    assert chat[1]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert chat[1]["messages"][-1] == {"role": "assistant", "content": "Lima"}
    rows = list(csv.reader(io.StringIO(await _export(api, "capitals", "csv"))))
    assert rows[0] == ["id", "input", "expectedOutput", "metadata"]
    assert rows[4][2] == '\'=HYPERLINK("x")'  # never a formula in a spreadsheet
    eval_lines = [json.loads(x) for x in (await _export(api, "capitals", "jsonl")).splitlines()]
    assert [x["expectedOutput"] for x in eval_lines] == ["Paris", "Lima", None, '=HYPERLINK("x")']
    # Remove one item: version 4; version 1 still reads as it was.
    removed = await api.http.request(
        "DELETE", "/api/datasets/capitals/items", json={"ids": [eval_lines[0]["id"]]}
    )
    assert (removed.json()["version"], removed.json()["items"]) == (4, 3)
    first = (await api.http.get("/api/datasets/capitals", params={"version": 1})).json()
    assert [x["expectedOutput"] for x in first["data"]] == ["Paris"]
    old = await _export(api, "capitals", "jsonl", version=1)
    assert len(old.splitlines()) == 1


async def test_a_dataset_from_generations_with_their_users_better_responses(api: Api) -> None:
    gens = [generation(template={"name": "support"}) for _ in range(3)]
    await api.http.post("/api/ingest", json={"batch": [{"type": "generation", "body": g} for g in gens]})
    await api.http.post(f"/api/generations/{gens[0]['id']}/feedback", json={"betterResponse": "⚽ (soccer)"})
    await api.http.post(f"/api/generations/{gens[1]['id']}/feedback", json={"rating": 2})
    better = await api.http.post(
        "/api/datasets",
        json={"name": "fixes", "fromFilter": {"template.name": "support"}, "expected": "betterResponse"},
    )
    assert (better.status_code, better.json()["added"]) == (201, 1), better.text
    [line] = (await _export(api, "fixes", "openai-chat")).splitlines()
    example = check_chat_line(line)
    assert example["messages"] == [
        {"role": "user", "content": "Show me an emoji for soccer"},
        {"role": "assistant", "content": "⚽ (soccer)"},
    ]
    outputs = await api.http.post("/api/datasets", json={"name": "all", "fromFilter": {}, "limit": 2})
    assert outputs.json()["added"] == 2
    # A filter straight to fine-tuning data, without a dataset: the better response where given.
    r = await api.http.post(
        "/api/generations/export", json={"format": "openai-chat", "filters": {"template.name": "support"}}
    )
    lines = [check_chat_line(x) for x in r.text.splitlines()]
    answers = sorted(x["messages"][-1]["content"] for x in lines)
    assert answers == ["⚽", "⚽", "⚽ (soccer)"]


async def test_bad_datasets_are_refused_and_change_nothing(api: Api) -> None:
    cases = [
        ({"items": []}, "name"),
        ({"name": "d", "items": [{"expectedOutput": "x"}]}, "items[0].input"),
        ({"name": "d", "items": [{"input": "x", "colour": 1}]}, "items[0].colour"),
        ({"name": "d", "fromFilter": {"$where": "1"}}, "fromFilter"),
        ({"name": "d", "fromFilter": {}, "expected": "nothing"}, "expected"),
        ({"name": "d", "fromFilter": {}, "limit": 0}, "limit"),
        ({"name": "d", "items": "x"}, "items"),
    ]
    for body, field in cases:
        r = await api.http.post("/api/datasets", json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["field"].startswith(field), (body, r.json())
    assert (await api.http.get("/api/datasets")).json()["data"] == []
    r = await api.http.post("/api/datasets/nope/items", json={"items": [{"input": "x"}]})
    assert r.status_code == 404
    await api.http.post("/api/datasets", json={"name": "d"})
    r = await api.http.post("/api/datasets/d/export", json={"format": "parquet"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "format"
    r = await api.http.post(
        "/api/datasets/d/items", content=b"{not json\n", headers={"content-type": "application/x-ndjson"}
    )
    assert r.status_code == 400
