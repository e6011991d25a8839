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
        json={"format": "jsonl", "fields": ["id", "feedback.rating"], "filters": {"feedback": True}},
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


async def test_bad_export_requests(api: Api) -> None:
    for body, words in (
        ({"format": "xml"}, "format"),
        ({"fields": "id"}, "fields"),
        ({"filters": {"colour": "red"}}, "colour"),
        ({"filters": ["x"]}, "filters"),
    ):
        r = await api.http.post("/api/generations/export", json=body)
        assert r.status_code == 400 and words in r.json()["error"]["message"], r.text
