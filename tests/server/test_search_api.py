"""Free-text search through HTTP: ``q=`` on ``GET /api/generations`` and the totals, ``$text`` in the
MongoDB-style query and aggregate, on SQLite and PostgreSQL; data fed by the API and by the real
``openai`` client through the gateway."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import Api
from tests.gateway.conftest import InProc, inproc, upstream  # noqa: F401 (fixtures)
from tests.server.test_ingest import generation

START = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
FILLER = [
    "please",
    "summarise",
    "the",
    "meeting",
    "notes",
    "and",
    "list",
    "every",
    "action",
    "item",
    "for",
    "the",
    "team",
]


def _gen(i: int, output: str, **fields: Any) -> dict[str, Any]:
    return generation(
        id=f"gen-{i}",
        timestamp=(START + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
        input={"type": "text", "content": [{"role": "user", "content": f"request {i}"}]},
        output={"type": "text", "content": output},
        metadata={"userId": f"u{i % 4}"},
        **fields,
    )


@pytest.fixture
async def sent(api: Api) -> list[dict[str, Any]]:
    rng = random.Random(5)
    gens = [_gen(i, " ".join(rng.choices(FILLER, k=25))) for i in range(2000)]
    gens[777]["output"]["content"] += " Remember the Kilimanjaro offsite."
    gens[1502]["output"]["content"] = "Kilimanjaro is the tallest mountain in Africa"
    gens[42]["template"] = {"name": "weekly-digest", "text": "Digest of {week}", "params": {"week": "48"}}
    gens[43]["metadata"]["department"] = "Oceanography"
    for start in range(0, len(gens), 500):
        batch = [{"type": "generation", "body": g} for g in gens[start : start + 500]]
        r = await api.http.post("/api/ingest", json={"batch": batch})
        assert r.status_code == 200, r.text
    return gens


async def _list(api: Api, **params: Any) -> list[str]:
    r = await api.http.get("/api/generations", params=params)
    assert r.status_code == 200, r.text
    return [g["id"] for g in r.json()["data"]]


async def test_q_finds_a_word_of_an_output_among_thousands_with_other_filters(
    api: Api, sent: list[dict[str, Any]]
) -> None:
    assert await _list(api, q="kilimanjaro") == ["gen-1502", "gen-777"]
    assert await _list(api, q="kilimanjaro", userId="u1") == ["gen-777"]
    assert await _list(api, q="kilimanjaro", userId="u2") == ["gen-1502"]
    assert await _list(api, q="kilimanjaro", userId="u3") == []
    assert await _list(api, q='"tallest mountain"') == ["gen-1502"]
    assert await _list(api, q='"mountain tallest"') == []
    assert await _list(api, q="kiliman*", limit=1) == ["gen-1502"]
    assert await _list(api, q="weekly-digest") == ["gen-42"]
    assert await _list(api, q="oceanography") == ["gen-43"]
    assert await _list(api, q="nothingmatches") == []
    # The cursor pages through a search as through any list.
    r = await api.http.get("/api/generations", params={"q": "kilimanjaro", "limit": 1})
    after = await _list(api, q="kilimanjaro", limit=1, cursor=r.json()["nextCursor"])
    assert after == ["gen-777"]


async def test_totals_of_a_search_match_the_aggregate(api: Api, sent: list[dict[str, Any]]) -> None:
    flt = {"$text": {"$search": "kilimanjaro"}}
    r = await api.http.post("/api/generations/totals", json={"filter": flt})
    assert r.status_code == 200, r.text
    totals = r.json()
    group = {"_id": None, "n": {"$sum": 1}, "cost": {"$sum": "$usage.cost"}}
    r = await api.http.post(
        "/api/generations/aggregate", json={"pipeline": [{"$match": flt}, {"$group": group}]}
    )
    assert r.status_code == 200, r.text
    [row] = r.json()["data"]
    assert totals["matched"] == row["n"] == 2
    assert totals["cost"] == pytest.approx(row["cost"])


async def test_text_in_the_query_body_combines_with_other_conditions(
    api: Api, sent: list[dict[str, Any]]
) -> None:
    body = {"filter": {"$text": {"$search": "kilimanjaro"}, "metadata.userId": {"$in": ["u1", "u3"]}}}
    r = await api.http.post("/api/generations/query", json=body)
    assert r.status_code == 200, r.text
    assert [g["id"] for g in r.json()["data"]] == ["gen-777"]
    r = await api.http.post("/api/generations/query", json={"filter": {"$text": {"$search": ""}}})
    assert r.status_code == 400 and "$text" in r.text
    r = await api.http.post("/api/generations/query", json={"filter": {"$text": {"$find": "x"}}})
    assert r.status_code == 400 and "$text" in r.text


@pytest.mark.parametrize(
    "q",
    [
        '"unclosed phrase',
        '"',
        "*",
        "***",
        "NEAR(a b, 2)",
        "a OR b",
        "-kilimanjaro",
        "title:kilimanjaro",
        "kilimanjaro^",
        "'; DROP TABLE generations; --",
        "\\",
        "🙂",
        "ünïcödé 漢字",
        "x" * 10_000,
        "word " * 90,
    ],
)
async def test_hostile_searches_answer_a_result_or_a_400_naming_q(api: Api, q: str) -> None:
    r = await api.http.get("/api/generations", params={"q": q})
    assert r.status_code in (200, 400), r.text
    if r.status_code == 400:
        assert r.json()["error"]["field"] == "q", r.text
    r = await api.http.post("/api/generations/query", json={"filter": {"$text": {"$search": q}}})
    assert r.status_code in (200, 400), r.text


async def test_another_projects_words_are_not_found(api: Api) -> None:
    other = api.new_key("other-project", "dev")
    secret = _gen(1, "the password is swordfish")
    r = await api.http.post("/api/generations", json=secret, headers=api.headers(other))
    assert r.status_code == 201, r.text
    assert await _list(api, q="swordfish") == []
    r = await api.http.get("/api/generations", params={"q": "swordfish"}, headers=api.headers(other))
    assert [g["id"] for g in r.json()["data"]] == ["gen-1"]


async def test_an_erased_users_generations_are_no_longer_found(api: Api) -> None:
    gens = [_gen(i, f"fjord number {i}") for i in range(4)]  # users u0 .. u3
    r = await api.http.post("/api/ingest", json={"batch": [{"type": "generation", "body": g} for g in gens]})
    assert r.status_code == 200, r.text
    assert len(await _list(api, q="fjord")) == 4
    r = await api.http.delete("/api/users/u2")
    assert r.status_code == 200, r.text
    assert await _list(api, q="fjord") == ["gen-3", "gen-1", "gen-0"]
    r = await api.http.delete("/api/users/u1", params={"anonymise": "true"})
    assert r.status_code == 200, r.text
    assert await _list(api, q="fjord") == ["gen-3", "gen-0"]  # its content is no longer searchable
    assert await _list(api, q="fjord", userId="u1") == []


async def test_a_call_through_the_gateway_is_found_by_a_word_of_its_prompt(inproc: InProc) -> None:  # noqa: F811
    word = f"zebra{uuid.uuid4().hex[:8]}"
    await inproc.client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"Tell me about the {word} please"}]
    )
    await inproc.generations(1)
    r = await inproc.http.get("/api/generations", params={"q": word}, headers=inproc.headers())
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 1
    assert word in str(r.json()["data"][0]["input"]["content"])


async def test_q_on_runs_finds_the_runs_whose_calls_hold_the_words(api: Api) -> None:
    gens = [
        _gen(9001, "the glacier report is ready", runId="run-glacier", stepIndex=0),
        _gen(9002, "nothing to see", runId="run-glacier", stepIndex=1),
        _gen(9003, "a desert forecast", runId="run-desert", stepIndex=0),
    ]
    for g in gens:
        del g["metadata"]["userId"]  # a run's user is the run's own
    batch = [{"type": "generation", "body": g} for g in gens]
    r = await api.http.post("/api/ingest", json={"batch": batch})
    assert r.status_code == 200 and all(x["status"] == 201 for x in r.json()["results"]), r.text

    async def runs(**params: Any) -> list[str]:
        r = await api.http.get("/api/runs", params=params)
        assert r.status_code == 200, r.text
        return [run["id"] for run in r.json()["data"]]

    assert await runs(q="glacier") == ["run-glacier"]
    assert await runs(q="desert forecast") == ["run-desert"]
    assert await runs(q="glacier", status="error") == []
    assert sorted(await runs()) == ["run-desert", "run-glacier"]
    r = await api.http.get("/api/runs", params={"q": '"'})
    assert r.status_code == 400 and "q" in r.json()["error"]["field"]
