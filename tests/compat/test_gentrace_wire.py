"""``POST /api/v1/run`` (and the older ``/api/v1/pipeline-run``): gentrace 0.x runs, on both databases.

The bodies are what gentrace-py 0.32.2 posts (``PipelineRun.get_final_step_runs``): test_gentrace_package.py
drives the real client against a real server; here each rule of the endpoint is checked on its own.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from sightline.compat.gentrace_wire import render_mustache, translate
from sightline.errors import InvalidInput
from tests.conftest import Api

T0, T1, T2, T3 = (f"2026-11-20T10:00:0{i}.000Z" for i in range(4))


def chat_step(user: str | None = "alice", **context: Any) -> dict[str, Any]:
    """A chat step as gentrace's OpenAI handler records it: template messages, their inputs, the answer."""
    return {
        "providerName": "openai",
        "invocation": "openai_createChatCompletion",
        "modelParams": {
            "model": "gpt-4o-mini",
            "temperature": 0.2,
            "contentTemplates": ["Hi {{ name }} & co"],
        },
        "inputs": {
            "messages": [
                {
                    "role": "user",
                    "contentTemplate": "Hi {{ name }} & co",
                    "contentInputs": {"name": "<Vivek>"},
                }
            ],
            "user": None,
            "contentInputs": [{"name": "<Vivek>"}],
        },
        "outputs": {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
        },
        "elapsedTime": 1000,
        "startTime": T0,
        "endTime": T1,
        "context": {"userId": user, **context} if user else dict(context),
    }


def custom_step(**fields: Any) -> dict[str, Any]:
    """A ``runner.measure`` / ``checkpoint`` step: a function's inputs and outputs."""
    return {
        "providerName": "undeclared",
        "invocation": "retrieve",
        "modelParams": {},
        "inputs": {"query": "maine"},
        "outputs": {"value": ["doc-1"]},
        "elapsedTime": 1000,
        "startTime": T1,
        "endTime": T2,
        "context": {"userId": "alice"},
        **fields,
    }


def completion_step() -> dict[str, Any]:
    return {
        "providerName": "openai",
        "invocation": "openai_createCompletion",
        "modelParams": {"model": "gpt-3.5-turbo-instruct", "promptTemplate": "Essay on {{ topic }}"},
        "inputs": {"prompt": {"topic": "Maine"}},
        "outputs": {"choices": [{"index": 0, "text": "Maine is...", "finish_reason": "stop"}]},
        "elapsedTime": 1000,
        "startTime": T2,
        "endTime": T3,
        "context": {"userId": "alice"},
    }


def run_body(*steps: dict[str, Any], **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "slug": "compose",
        "metadata": {
            "gitSha": {"type": "string", "value": "63ce36d"},
            "externalServiceUrl": {"type": "url", "url": "https://example.com", "text": "External"},
        },
        "previousRunId": None,
        "stepRuns": list(steps) or [chat_step(), custom_step(), completion_step()],
    }
    body.update(fields)
    return body


async def test_a_run_becomes_a_run_with_its_steps_and_generations(api: Api) -> None:
    body = run_body()
    r = await api.http.post("/api/v1/run", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"pipelineRunId": body["id"]}

    run = (await api.http.get(f"/api/runs/{body['id']}")).json()
    assert run["pipelineSlug"] == "compose" and run["userId"] == "alice" and run["status"] == "ok"
    assert run["metadata"]["gitSha"] == {"type": "string", "value": "63ce36d"}
    assert run["metadata"]["externalServiceUrl"]["url"] == "https://example.com"
    assert [(s["kind"], s["stepIndex"]) for s in run["steps"]] == [
        ("generation", 0),
        ("step", 1),
        ("generation", 2),
    ]
    chat, retrieve, completion = run["steps"]
    # the model was sent the template rendered as gentrace renders it (pystache escapes HTML)
    assert chat["input"]["content"] == [{"role": "user", "content": "Hi &lt;Vivek&gt; & co"}]
    assert chat["template"]["chat"] == [{"role": "user", "content": "Hi {{ name }} & co"}]
    assert chat["template"]["params"] == {"name": "<Vivek>"}
    assert chat["output"]["content"] == "Hello!" and chat["parameters"]["temperature"] == 0.2
    assert chat["usage"]["totalTokens"] == 15 and chat["usage"]["cost"] > 0  # priced from the outputs' usage
    assert chat["performance"]["latency"] == 1000
    assert retrieve["name"] == "retrieve" and retrieve["inputs"] == {"query": "maine"}
    assert retrieve["outputs"] == {"value": ["doc-1"]}
    assert (
        completion["input"]["content"] == "Essay on Maine"
        and completion["template"]["text"] == "Essay on {{ topic }}"
    )

    by_user = (await api.http.get("/api/generations", params={"userId": "alice"})).json()["data"]
    assert {g["id"] for g in by_user} == {chat["id"], completion["id"]}
    by_meta = (await api.http.get("/api/generations", params={"metadata.gitSha": "63ce36d"})).json()["data"]
    assert len(by_meta) == 2
    listed = (await api.http.get("/api/runs", params={"pipelineSlug": "compose"})).json()["data"]
    assert [x["id"] for x in listed] == [body["id"]]

    # the same run posted again changes nothing
    assert (await api.http.post("/api/v1/run", json=body)).status_code == 200
    again = (await api.http.get("/api/generations", params={"runId": body["id"]})).json()["data"]
    assert len(again) == 2


async def test_step_metadata_merges_into_the_run_latest_write_wins(api: Api) -> None:
    first = chat_step(metadata={"promptId": {"type": "string", "value": "MzY0MzQ0"}})
    second = chat_step(metadata={"promptId": {"type": "string", "value": "SGVsbG8g"}})
    second["startTime"], second["endTime"] = T2, T3
    body = run_body(first, second)
    assert (await api.http.post("/api/v1/run", json=body)).status_code == 200
    run = (await api.http.get(f"/api/runs/{body['id']}")).json()
    assert run["metadata"]["promptId"] == {"type": "string", "value": "SGVsbG8g"}
    assert run["metadata"]["gitSha"]["value"] == "63ce36d"
    found = (await api.http.get("/api/generations", params={"metadata.promptId": "SGVsbG8g"})).json()["data"]
    assert len(found) == 2


async def test_a_bad_step_is_refused_alone(api: Api) -> None:
    unknown = chat_step()
    unknown["invocation"] = "openai_createFoo"
    other_user = custom_step(context={"userId": "mallory"})
    no_time = custom_step()
    del no_time["startTime"]
    body = run_body(chat_step(), unknown, other_user, no_time, custom_step())
    r = await api.http.post("/api/v1/run", json=body)
    assert r.status_code == 200
    refused = {x["index"]: x["error"]["field"] for x in r.json()["refusedSteps"]}
    assert refused == {
        1: "stepRuns[1].invocation",
        2: "stepRuns[2].context.userId",
        3: "stepRuns[3].startTime",
    }
    assert "cannot be specified on a single step" in r.json()["refusedSteps"][1]["error"]["message"]
    run = (await api.http.get(f"/api/runs/{body['id']}")).json()
    assert [s["stepIndex"] for s in run["steps"]] == [0, 4] and run["userId"] == "alice"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": None}, "id"),
        ({"id": 42}, "id"),
        ({"stepRuns": []}, "stepRuns"),
        ({"stepRuns": {"0": {}}}, "stepRuns"),
        ({"slug": ["compose"]}, "slug"),
        ({"metadata": {"gitSha": "63ce36d"}}, "metadata.gitSha"),  # no "type" key
        ({"metadata": {"gitSha": {"type": "number", "value": 1}}}, "metadata.gitSha"),
        ({"metadata": {"link": {"type": "url", "url": "https://x.test"}}}, "metadata.link"),  # no text
        ({"metadata": {"gitSha": {"type": "string"}}}, "metadata.gitSha"),  # no value
        ({"metadata": "sha"}, "metadata"),
        ({"stepRuns": ["not a step"]}, "stepRuns[0]"),
    ],
)
async def test_a_malformed_run_is_refused_whole(api: Api, change: dict[str, Any], field: str) -> None:
    body = run_body()
    body.update(change)
    r = await api.http.post("/api/v1/run", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["field"] == field, r.json()
    assert (await api.http.get("/api/runs")).json()["data"] == []
    assert (await api.http.get("/api/generations")).json()["data"] == []


async def test_not_json_and_no_key_are_refused(api: Api) -> None:
    r = await api.http.post("/api/v1/run", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]
    r = await api.http.post("/api/v1/run", json=run_body(), headers={"Authorization": "Bearer sk-wrong"})
    assert r.status_code == 401
    assert (await api.http.get("/api/runs")).json()["data"] == []


async def test_the_older_pipeline_run_shape(api: Api) -> None:
    step = chat_step(user=None)
    nested = {
        "provider": {k: step[k] for k in ("invocation", "modelParams", "inputs", "outputs")}
        | {"name": "openai"},
        **{k: step[k] for k in ("elapsedTime", "startTime", "endTime")},
    }
    r = await api.http.post("/api/v1/pipeline-run", json={"name": "legacy-pipeline", "stepRuns": [nested]})
    assert r.status_code == 200, r.text
    run_id = r.json()["pipelineRunId"]
    run = (await api.http.get(f"/api/runs/{run_id}")).json()
    assert run["pipelineSlug"] == "legacy-pipeline"
    assert run["steps"][0]["kind"] == "generation" and run["steps"][0]["output"]["content"] == "Hello!"
    # nested steps are read on the current endpoint too
    r = await api.http.post("/api/v1/run", json=run_body(copy.deepcopy(nested)))
    assert r.status_code == 200 and "refusedSteps" not in r.json()


def test_translate_streamed_chat_and_embedding_steps() -> None:
    streamed = chat_step()
    streamed["modelParams"]["stream"] = True
    del streamed["outputs"]["usage"]  # a stream's assembled completion has no usage
    embedding = {
        "providerName": "openai",
        "invocation": "openai_createEmbedding",
        "modelParams": {"model": "text-embedding-3-small"},
        "inputs": {"input": "hello"},
        "outputs": {
            "data": [{"embedding": [0.1, 0.2, 0.3], "index": 0}],
            "usage": {"prompt_tokens": 1, "total_tokens": 1},
        },
        "elapsedTime": 5,
        "startTime": T0,
        "endTime": T0,
    }
    found = translate(run_body(streamed, embedding))
    chat, emb = found.generations
    assert chat.wire()["parameters"]["stream"] is True and chat.output["content"] == "Hello!"
    assert emb.output == {"type": "other", "content": {"embeddings": 1, "dimensions": 3}}
    assert emb.usage["promptTokens"] == 1 and not found.refused


def test_every_step_refused_is_a_refusal_of_the_run() -> None:
    bad = chat_step()
    bad["inputs"]["messages"] = "hello"
    with pytest.raises(InvalidInput) as caught:
        translate(run_body(bad))
    assert caught.value.field == "stepRuns[0].inputs.messages"


def test_render_mustache_as_pystache_does() -> None:
    assert render_mustache(
        "{{a}} {{{a}}} {{& a}} {{! note }}{{missing}}|{{b.c}}", {"a": "<x>", "b": {"c": 1}}
    ) == ("&lt;x&gt; <x> <x> |1")
