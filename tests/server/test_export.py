"""Export: whole records as JSON Lines (as the API shows them), chosen fields, CSV."""

from __future__ import annotations

import csv
import io

import orjson

from tests.conftest import Api
from tests.server.test_ingest import generation


async def _seed(api: Api) -> list[dict[str, object]]:
    plain = generation(timestamp="2026-11-20T10:00:03Z")
    judged = generation(timestamp="2026-11-20T10:00:02Z")
    in_run = generation(timestamp="2026-11-20T10:00:01Z", runId="run-e", metadata={"phase": "draft"})
    await api.http.post(
        "/api/ingest",
        json={
            "batch": [{"type": "generation", "body": g} for g in (plain, judged, in_run)]
            + [
                {"type": "run", "body": {"id": "run-e", "userId": "dora", "metadata": {"plan": "team"}}},
                {"type": "feedback", "body": {"generationId": judged["id"], "rating": 2, "comment": "meh"}},
            ]
        },
    )
    return [plain, judged, in_run]


async def test_jsonl_has_whole_records_as_the_api_shows_them(api: Api) -> None:
    plain, judged, in_run = await _seed(api)
    r = await api.http.post("/api/generations/export", json={"format": "jsonl"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    lines = [orjson.loads(x) for x in r.content.splitlines()]
    assert [x["id"] for x in lines] == [plain["id"], judged["id"], in_run["id"]]
    for line in lines:
        assert line == (await api.http.get(f"/api/generations/{line['id']}")).json()
    assert lines[1]["feedback"]["comment"] == "meh"
    assert lines[2]["metadata"]["userId"] == "dora" and lines[2]["metadata"]["plan"]["value"] == "team"


async def test_fields_and_filters_and_csv(api: Api) -> None:
    plain, judged, in_run = await _seed(api)
    r = await api.http.post(
        "/api/generations/export",
        json={
            "format": "jsonl",
            "fields": ["id", "feedback.rating"],
            "filters": {"feedback.rating": {"$exists": True}},
        },
    )
    assert [orjson.loads(x) for x in r.content.splitlines()] == [{"id": judged["id"], "feedback.rating": 2}]
    r = await api.http.post(
        "/api/generations/export",
        json={"format": "csv", "fields": ["id", "metadata.userId", "metadata.plan", "usage.cost"]},
    )
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["id", "metadata.userId", "metadata.plan", "usage.cost"]
    assert rows[3][:3] == [in_run["id"], "dora", "team"]
    assert float(rows[1][3]) > 0


async def test_the_seed_documents_export_body(api: Api) -> None:
    """The body the seed document writes: filters with operators without '$', and whole parts as fields."""
    january = [
        generation(model={"id": "gpt-4"}, timestamp="2023-01-05T10:00:00Z"),
        generation(model={"id": "gpt-4"}, timestamp="2023-01-31T23:00:00Z"),
    ]
    others = [
        generation(model={"id": "gpt-4"}, timestamp="2023-02-01T00:00:00Z"),
        generation(model={"id": "gpt-3.5-turbo"}, timestamp="2023-01-10T00:00:00Z"),
    ]
    await api.http.post(
        "/api/ingest",
        json={
            "batch": [{"type": "generation", "body": g} for g in january + others]
            + [{"type": "feedback", "body": {"generationId": january[0]["id"], "thumbs": "up"}}]
        },
    )
    body = {
        "format": "jsonl",
        "filters": {
            "model.id": "gpt-4",
            "timestamp": {"gte": "2023-01-01T00:00:00Z", "lte": "2023-01-31T23:59:59Z"},
        },
        "fields": ["input", "output", "feedback"],
    }
    r = await api.http.post("/api/generations/export", json=body)
    assert r.status_code == 200, r.text
    lines = [orjson.loads(x) for x in r.content.splitlines()]
    assert len(lines) == 2 and all(set(line) == {"input", "output", "feedback"} for line in lines)
    newest, oldest = lines
    assert oldest["input"] == january[0]["input"] and oldest["feedback"]["thumbs"] == "up"
    assert newest["output"] == january[1]["output"] and newest["feedback"] is None
    # The same filter with '$' (as /api/generations/query takes it) exports the same records.
    body["filters"]["timestamp"] = {"$gte": "2023-01-01T00:00:00Z", "$lte": "2023-01-31T23:59:59Z"}
    assert (await api.http.post("/api/generations/export", json=body)).content == r.content
    query = await api.http.post("/api/generations/query", json={"filter": body["filters"]})
    assert [g["id"] for g in query.json()["data"]] == [january[1]["id"], january[0]["id"]]


async def test_bad_export_requests(api: Api) -> None:
    await _seed(api)
    for body, field in (
        ({"format": "xml"}, "format"),
        ({"fields": "id"}, "fields"),
        ({"fields": ["id", "colour"]}, "colour"),
        ({"fields": ["model.colour"]}, "model.colour"),
        ({"filters": {"colour": "red"}}, "colour"),
        ({"filters": ["x"]}, "filters"),
        ({"filter": {"model.id": "gpt-4"}}, "filter"),
        ({"filters": {"model.id": {"gte": 3}}}, "model.id"),
        ({"filters": {"timestamp": {"gte": "last week"}}}, "timestamp"),
        ({"filters": {"metadata.s": {"regex": "(a)\\1"}}}, "metadata.s"),
    ):
        r = await api.http.post("/api/generations/export", json=body)
        assert r.status_code == 400, (body, r.text)
        error = r.json()["error"]
        assert error["type"] == "invalid_request" and field in error["message"], (body, error)


async def test_csv_is_what_a_spreadsheet_reads(api: Api) -> None:
    """Formulas neutralised (OWASP), booleans as true/false, plain decimals, JSON for nested values."""
    formulas = ["=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx"]
    gens = [
        generation(
            timestamp=f"2026-11-20T10:00:0{i}Z",
            model={"id": text},
            usage={"promptTokens": 1, "completionTokens": 1, "cost": 0.000009},
            cacheHit=False,
            metadata={"note": text, "beta": True},
        )
        for i, text in enumerate(formulas)
    ]
    await api.http.post("/api/ingest", json={"batch": [{"type": "generation", "body": g} for g in gens]})
    fields = ["model.id", "metadata.note", "usage.cost", "cacheHit", "metadata.beta", "parameters", "input"]
    r = await api.http.post("/api/generations/export", json={"format": "csv", "fields": fields})
    assert r.status_code == 200, r.text
    rows = list(csv.reader(io.StringIO(r.text, newline="")))
    assert rows[0] == fields
    by_model = {row[0]: row for row in rows[1:]}
    assert sorted(by_model) == sorted("'" + text for text in formulas)
    for text in formulas:
        model, note, cost, cache_hit, beta, parameters, input_ = by_model["'" + text]
        assert note == "'" + text
        assert cost == "0.000009" and cache_hit == "false" and beta == "true"
        assert orjson.loads(parameters) == gens[0]["parameters"]
        assert orjson.loads(input_) == gens[0]["input"]
