"""Online evaluation, backfills and the LLM judge through the real app, on SQLite and PostgreSQL.

The local upstream echoes the prompt's last user message, so a judge whose template is ``{output}``
answers whatever the judged generation's output says: each test chooses its judge's verdicts.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sightline.evals.evaluator import sampled
from tests.evals.conftest import EvalApi
from tests.fake_openai import FakeOpenAI
from tests.server.test_ingest import generation


def gen(model: str, output: str, **extra: Any) -> dict[str, Any]:
    return generation(
        id=str(uuid.uuid4()), model={"id": model, "provider": "openai"}, output={"content": output}, **extra
    )


async def test_online_rules_take_matching_generations_at_their_sample_rate(evals_api: EvalApi) -> None:
    api = evals_api
    json_ok = await api.evaluator(name="json-ok", type="json_valid", filter={"model.id": "gpt-4o"})
    await api.evaluator(
        name="polite", type="contains", config={"values": ["please"]}, filter={}, sampleRate=0.3
    )
    gens = [
        gen("gpt-4o" if i % 2 else "gpt-4o-mini", '{"a": 1}' if i % 3 else "please, no") for i in range(120)
    ]
    await api.ingest(gens)
    await api.run_jobs()
    polite_id = (await api.http.get("/api/evaluators/polite")).json()["id"]
    for g in gens:
        scores = {s["name"]: s for s in await api.scores_of(g["id"])}
        assert ("json-ok" in scores) == (g["model"]["id"] == "gpt-4o")
        if "json-ok" in scores:
            assert scores["json-ok"]["label"] == (
                "pass" if g["output"]["content"].startswith("{") else "fail"
            )
            assert scores["json-ok"]["source"] == "rule" and scores["json-ok"]["evaluatorId"] == json_ok
        assert ("polite" in scores) == sampled(polite_id, g["id"], 0.3)
    taken = sum(sampled(polite_id, g["id"], 0.3) for g in gens)
    assert 15 <= taken <= 60
    # Run again: nothing is evaluated twice; new generations are.
    await api.run_jobs()
    more = [gen("gpt-4o", "{}")]
    await api.ingest(more)
    await api.run_jobs()
    listed = (await api.http.get("/api/evaluators/json-ok")).json()
    assert listed["lastDay"]["evaluations"] == 61
    latest = {s["name"]: s for s in await api.scores_of(more[0]["id"])}
    assert latest["json-ok"]["label"] == "pass"


async def test_what_came_before_an_evaluator_is_for_a_backfill(evals_api: EvalApi) -> None:
    api = evals_api
    old = [gen("gpt-4o", "x" * n) for n in range(1, 131)]
    await api.ingest(old)
    ev = await api.evaluator(name="short", type="length", config={"max": 100}, filter={})
    await api.run_jobs()
    assert await api.scores_of(old[0]["id"]) == []  # online evaluation only takes new generations
    estimate = await api.http.post(f"/api/evaluators/{ev}/estimate", json={"filter": {"model.id": "gpt-4o"}})
    assert estimate.json()["generations"] == 130
    r = await api.http.post(f"/api/evaluators/{ev}/run", json={"filter": {"model.id": "gpt-4o"}})
    assert r.status_code == 202, r.text
    job_id = r.json()["jobId"]
    await api.run_jobs()
    job = (await api.http.get(f"/api/jobs/{job_id}")).json()
    assert (job["status"], job["done"], job["total"], job["errors"]) == ("succeeded", 130, 130, 0)
    failing = await api.http.post(
        "/api/generations/query", json={"filter": {"scores.short": "fail"}, "limit": 500}
    )
    assert len(failing.json()["data"]) == 30


async def test_the_llm_judge_scores_and_explains_through_the_gateway(
    evals_api: EvalApi, upstream: FakeOpenAI
) -> None:
    api = evals_api
    await api.evaluator(
        name="helpfulness",
        type="llm_judge",
        config={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "{output}"}]},
        filter={"template.name": "support"},
    )
    good = gen("gpt-4o", '{"score": 0.9, "reasoning": "answers the question"}', template={"name": "support"})
    bad = gen("gpt-4o", "I cannot tell", template={"name": "support"})
    outside = gen("gpt-4o", '{"score": 7}', template={"name": "support"})
    other = gen("gpt-4o", '{"score": 0.1}', template={"name": "sales"})
    await api.ingest([good, bad, outside, other])
    await api.run_jobs()
    [score] = await api.scores_of(good["id"])
    assert (score["value"], score["comment"], score["source"]) == (0.9, "answers the question", "llm")
    judge_id = score["judgeGenerationId"]
    await asyncio.sleep(0.2)  # the judge's own generation is recorded in the background
    await api.run_jobs()
    judged = (await api.http.get(f"/api/generations/{judge_id}")).json()
    assert judged["model"]["id"] == "gpt-4o-mini" and "sightline:judge" in judged["metadata"]["tags"]
    assert "scores" not in judged  # a judge's call is never judged in turn
    [unreadable] = await api.scores_of(bad["id"])
    assert unreadable["value"] is None and "no score" in unreadable["error"]
    [out_of_range] = await api.scores_of(outside["id"])
    assert "outside" in out_of_range["error"]
    assert await api.scores_of(other["id"]) == []
    got = (await api.http.get(f"/api/generations/{good['id']}")).json()
    assert got["scores"]["helpfulness"]["value"] == 0.9
    stats = (await api.http.get("/api/evaluators/helpfulness")).json()["lastDay"]
    assert (stats["evaluations"], stats["errors"]) == (3, 2)


async def test_a_judge_whose_provider_is_down_waits_and_loses_nothing(evals_api: EvalApi) -> None:
    api = evals_api
    await api.evaluator(
        name="verdict",
        type="llm_judge",
        config={
            "model": "error-503",
            "labels": ["correct", "incorrect"],
            "messages": [{"role": "user", "content": "{output}"}],
        },
        filter={},
    )
    g = gen("gpt-4o", "Label: correct")
    await api.ingest([g])
    await api.run_jobs()
    assert await api.scores_of(g["id"]) == []  # not a made-up score, not an error: it waits
    # The provider is back (here: the judge's model answers again): the same generation is scored once.
    await api.evaluator(
        name="verdict",
        type="llm_judge",
        config={
            "model": "gpt-4o-mini",
            "labels": ["correct", "incorrect"],
            "messages": [{"role": "user", "content": "{output}"}],
        },
        filter={},
    )
    await api.run_jobs()
    await api.run_jobs()
    scores = await api.scores_of(g["id"])
    assert [(s["label"], s["value"], s["evaluatorVersion"]) for s in scores] == [("correct", 1.0, 2)], scores[
        0
    ]["error"]


async def test_bad_evaluators_are_refused_and_change_nothing(evals_api: EvalApi) -> None:
    api = evals_api
    cases = [
        ({"name": "x", "type": "colour"}, "type"),
        ({"name": "x", "type": "regex", "config": {"pattern": "(a"}}, "config.pattern"),
        ({"name": "x", "type": "json_schema", "config": {"schema": {"type": 5}}}, "config.schema"),
        ({"name": "x", "type": "json_valid", "filter": {"model.id": {"$colour": 1}}}, "filter"),
        ({"name": "x", "type": "json_valid", "sampleRate": 1.5}, "sampleRate"),
        ({"name": "x", "type": "llm_judge", "config": {}}, "config.model"),
        ({"name": "x", "type": "llm_judge", "config": {"model": "m", "prompt": "nope"}}, "config.prompt"),
        ({"name": "x", "type": "function", "config": {"function": "nope"}}, "config.function"),
        ({"name": "bad name", "type": "json_valid"}, "scoreName"),
        ({"name": "", "type": "json_valid"}, "name"),
    ]
    for body, field in cases:
        r = await api.http.post("/api/evaluators", json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["field"].startswith(field), (body, r.json())
    assert (await api.http.get("/api/evaluators")).json()["data"] == []
    r = await api.http.post("/api/evaluators/nope/run", json={})
    assert r.status_code == 404


async def test_versions_and_attachment(evals_api: EvalApi) -> None:
    api = evals_api
    body = {"name": "len", "type": "length", "config": {"max": 10}}
    first = await api.http.post("/api/evaluators", json=body)
    same = await api.http.post("/api/evaluators", json=body)
    changed = await api.http.post("/api/evaluators", json={**body, "config": {"max": 20}})
    assert (first.json()["version"], same.status_code, changed.json()["version"]) == (1, 200, 2)
    patched = await api.http.patch(
        "/api/evaluators/len", json={"filter": {"model.id": "m"}, "sampleRate": 0.5}
    )
    assert patched.json()["online"] is True and patched.json()["version"] == 2
    off = await api.http.patch("/api/evaluators/len", json={"enabled": False})
    assert off.json()["online"] is False
    bad = await api.http.patch("/api/evaluators/len", json={"sampleRate": -1})
    assert bad.status_code == 400


async def test_a_custom_function_scores_and_its_failures_are_recorded(
    evals_api: EvalApi, functions_dir: Any
) -> None:
    api = evals_api
    (functions_dir / "custom_checks.py").write_text(
        "def word_count(output: str, metadata: dict) -> dict:\n"
        "    if output == 'boom':\n"
        "        raise ValueError('cannot count that')\n"
        "    return {'value': len(output.split()), 'comment': metadata.get('plan', {}).get('value', '')}\n"
    )
    from sightline.pipelines.service import sync_functions
    from sightline.store.access.audit import Actor

    state = api.app.state
    await sync_functions(state.db, state.settings, state.sandbox, Actor("system"))
    r = await api.http.post(
        "/api/evaluators",
        json={"name": "words", "type": "function", "config": {"function": "word_count"}, "filter": {}},
    )
    assert r.status_code == 201, r.text
    counted, broken = gen("gpt-4o", "three short words"), gen("gpt-4o", "boom")
    await api.ingest([counted, broken])
    await api.run_jobs()
    [score] = await api.scores_of(counted["id"])
    assert (score["value"], score["comment"], score["source"]) == (3.0, "pro", "rule")
    [failed] = await api.scores_of(broken["id"])
    assert failed["value"] is None and "cannot count that" in failed["error"]
