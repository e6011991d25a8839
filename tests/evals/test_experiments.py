"""Experiments: two versions of a prompt over one dataset through the gateway, scored, compared."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.evals.conftest import EvalApi


async def _finish(api: EvalApi, experiment_id: int) -> dict[str, Any]:
    for _ in range(50):
        await api.jobs.run_once()
        got = (await api.http.get(f"/api/experiments/{experiment_id}")).json()
        if got["status"] == "succeeded":
            return dict(got)
        await asyncio.sleep(0.05)
    raise AssertionError(f"experiment {experiment_id} did not finish: {got}")


async def test_two_prompt_versions_compared_item_by_item(evals_api: EvalApi) -> None:
    api = evals_api
    for template in ("Answer {question}", "Answer briefly {question}"):
        r = await api.http.post(
            "/api/prompts", json={"name": "qa", "template": template, "model": "gpt-4o-mini"}
        )
        assert r.status_code == 201, r.text
    items = [
        {"input": {"question": "2+2?"}, "expectedOutput": "4"},
        {"input": {"question": "Capital of France?"}, "expectedOutput": "Paris"},
        {"input": "Largest planet?", "expectedOutput": "Jupiter"},  # the prompt's one argument
    ]
    assert (await api.http.post("/api/datasets", json={"name": "quiz", "items": items})).status_code == 201
    await api.evaluator(name="brief", type="contains", config={"values": ["briefly"]})
    await api.evaluator(name="asks", type="contains", config={"values": ["?"]})
    ids = []
    for version in (1, 2):
        r = await api.http.post(
            "/api/experiments",
            json={
                "dataset": "quiz",
                "target": {"prompt": "qa", "version": version},
                "evaluators": ["brief", "asks"],
            },
        )
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    first, second = [await _finish(api, i) for i in ids]
    assert first["summary"]["items"] == 3 and first["summary"]["errors"] == 0
    assert first["summary"]["scores"] == {"asks": 1.0, "brief": 0.0}
    assert second["summary"]["scores"] == {"asks": 1.0, "brief": 1.0}
    assert first["results"][0]["output"] == "Fake reply to: Answer 2+2?"
    assert first["results"][0]["latencyMs"] > 0 and first["results"][0]["totalTokens"] > 0
    # each result is a generation of the prompt's version, scored like any other
    generation = (await api.http.get(f"/api/generations/{second['results'][0]['generationId']}")).json()
    assert generation["template"]["name"] == "qa" and generation["scores"]["brief"]["label"] == "pass"
    compared = (await api.http.get("/api/experiments/compare", params={"a": ids[0], "b": ids[1]})).json()
    assert compared["better"] == {"brief": 3} and compared["worse"] == {}
    assert [x["deltas"]["brief"] for x in compared["items"]] == [1.0, 1.0, 1.0]
    assert compared["items"][1]["a"]["output"] == "Fake reply to: Answer Capital of France?"


async def test_bad_experiments_are_refused(evals_api: EvalApi) -> None:
    api = evals_api
    await api.http.post("/api/datasets", json={"name": "d", "items": [{"input": "x"}]})
    await api.http.post("/api/prompts", json={"name": "p", "template": "Say {x}"})  # no model
    cases = [
        ({"dataset": "nope", "target": {"prompt": "p"}}, 404, None),
        ({"dataset": "d", "target": {"prompt": "missing"}}, 400, "target.prompt"),
        ({"dataset": "d", "target": {"prompt": "p"}}, 400, "target.model"),
        ({"dataset": "d", "target": {"pipeline": "nope"}}, 400, "target.pipeline"),
        ({"dataset": "d", "target": {"prompt": "p", "model": "m"}, "evaluators": ["nope"]}, 404, None),
        ({"dataset": "d", "target": "p"}, 400, "target"),
    ]
    for body, status, field in cases:
        r = await api.http.post("/api/experiments", json=body)
        assert r.status_code == status, (body, r.text)
        if field:
            assert r.json()["error"]["field"] == field, r.json()
    assert (await api.http.get("/api/experiments")).json()["data"] == []
    assert (await api.http.get("/api/experiments/compare", params={"a": "x", "b": "1"})).status_code == 400
