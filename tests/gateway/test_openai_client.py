"""The real ``openai`` client (sync, async, streaming) through a real ``sightline serve`` process."""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.fake_openai import FakeOpenAI
from tests.gateway.conftest import GatewayServer, unique

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]


def test_sync_chat_is_forwarded_and_recorded(gateway: GatewayServer, fake: FakeOpenAI) -> None:
    key = gateway.new_key()
    client = gateway.client(key)
    marker = unique("hello")
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": marker}],
        temperature=0.3,
        max_tokens=20,
        extra_headers={
            "X-Sightline-User-Id": "alice",
            "X-Sightline-Session-Id": "session-1",
            "X-Sightline-Chat-Id": "chat-1",
            "X-Sightline-Template-Name": "greeting",
            "X-Sightline-Metadata": orjson.dumps(
                {"plan": "pro", "beta": True, "doc": {"type": "url", "url": "https://x.test", "text": "X"}}
            ).decode(),
        },
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == f"Fake reply to: {marker}"
    generation_id = raw.headers["x-sightline-generation-id"]
    assert raw.headers["x-sightline-cache"] == "MISS"
    assert raw.headers["x-sightline-feedback-key"].startswith("slfk_")
    assert raw.headers["x-request-id"].startswith("req_")  # the upstream's headers come through

    sent = [r for r in fake.requests() if marker in orjson.dumps(r["body"]).decode()]
    assert len(sent) == 1
    assert sent[0]["headers"]["authorization"] == "Bearer sk-settings-key"  # never the Sightline key
    assert not any(name.startswith("x-sightline") for name in sent[0]["headers"])

    gen = gateway.generation(key, generation_id)
    assert gen["model"]["id"] == "gpt-4o-mini" and gen["status"] == "ok" and gen["cacheHit"] is False
    assert gen["input"]["content"] == [{"role": "user", "content": marker}]
    assert gen["output"]["content"] == f"Fake reply to: {marker}"
    assert gen["parameters"]["temperature"] == 0.3 and gen["parameters"]["maxTokens"] == 20
    usage = gen["usage"]
    assert usage["promptTokens"] == completion.usage.prompt_tokens  # type: ignore[union-attr]
    assert usage["completionTokens"] == completion.usage.completion_tokens  # type: ignore[union-attr]
    assert usage["cost"] > 0
    meta = gen["metadata"]
    assert meta["userId"] == "alice" and meta["sessionId"] == "session-1"
    assert meta["plan"] == {"type": "string", "value": "pro"} and meta["beta"]["value"] is True
    assert meta["doc"]["url"] == "https://x.test" and meta["requestId"].startswith("req_")
    assert gen["chatId"] == "chat-1" and gen["template"]["name"] == "greeting"
    assert gen["performance"]["latency"] > 0

    # The feedback key on the answer lets a browser send feedback without the API key.
    r = httpx.post(
        f"{gateway.url}/api/feedback",
        json={"feedbackKey": raw.headers["x-sightline-feedback-key"], "thumbs": "up"},
    )
    assert r.status_code in (200, 201), r.text
    found = gateway.generations(key, 1, **{"metadata.userId": "alice"})
    assert [g["id"] for g in found] == [generation_id]


async def test_async_stream_passes_through_and_is_priced(gateway: GatewayServer, fake: FakeOpenAI) -> None:
    key = gateway.new_key()
    client = gateway.async_client(key)
    marker = unique("stream")
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": f"count {marker} one two three"}],
        stream=True,
    )
    stream = raw.parse()
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"Fake reply to: count {marker} one two three"
    assert all(c.choices for c in chunks), (
        "the usage chunk the gateway asked for reached a caller that did not"
    )
    assert all(c.usage is None for c in chunks)

    sent = [r for r in fake.requests() if marker in orjson.dumps(r["body"]).decode()]
    assert sent[0]["body"]["stream_options"] == {"include_usage": True}

    gen = gateway.generation(key, raw.headers["x-sightline-generation-id"])
    assert gen["output"]["content"] == text
    assert gen["usage"]["completionTokens"] == len(text.split()) and gen["usage"]["cost"] > 0
    perf = gen["performance"]
    assert 0 < perf["timeToFirstToken"] <= perf["latency"] and perf["tokensPerSecond"] > 0


def test_sync_stream_keeps_the_usage_chunk_asked_for(gateway: GatewayServer) -> None:
    key = gateway.new_key()
    client = gateway.client(key)
    with client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ) as stream:
        chunks = list(stream)
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    [gen] = gateway.generations(key, 1)
    assert gen["usage"]["totalTokens"] == chunks[-1].usage.total_tokens


def test_completions_embeddings_and_models(gateway: GatewayServer) -> None:
    key = gateway.new_key()
    client = gateway.client(key)
    text = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Once upon a time")
    assert text.choices[0].text == "Fake reply to: Once upon a time"
    vectors = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
    assert len(vectors.data) == 2
    assert [m.id for m in client.models.list()] == ["gpt-4o-mini"]  # forwarded, not a model call
    gens = gateway.generations(key, 2)
    by_model = {g["model"]["id"]: g for g in gens}
    assert len(gens) == 2
    assert by_model["gpt-3.5-turbo-instruct"]["input"]["content"] == "Once upon a time"
    assert by_model["text-embedding-3-small"]["output"]["content"] == {"embeddings": 2, "dimensions": 8}


def test_run_and_user_headers_give_the_run_its_user(gateway: GatewayServer) -> None:
    key = gateway.new_key()
    client = gateway.client(key)
    run_id = unique("run")
    headers = {"X-Sightline-Run-Id": run_id, "X-Sightline-User-Id": "bob"}
    for _ in range(2):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_headers=headers)
    gens = gateway.generations(key, 2, runId=run_id)
    assert {g["runId"] for g in gens} == {run_id}
    # The run owns the user id (a step may not set it); its steps are found by it.
    assert len(gateway.generations(key, 2, userId="bob")) == 2
    run = httpx.get(f"{gateway.url}/api/runs/{run_id}", headers={"Authorization": f"Bearer {key}"}).json()
    assert run["userId"] == "bob"


@pytest.mark.parametrize("streamed", [False, True])
def test_tool_calls_are_recorded_as_json(gateway: GatewayServer, streamed: bool) -> None:
    key = gateway.new_key()
    client = gateway.client(key)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    if streamed:
        list(client.chat.completions.create(model="tool-call", messages=MESSAGES, tools=tools, stream=True))
    else:
        client.chat.completions.create(model="tool-call", messages=MESSAGES, tools=tools)  # type: ignore[arg-type]
    [gen] = gateway.generations(key, 1)
    assert gen["output"]["type"] == "json"
    assert gen["output"]["content"]["tool_calls"][0]["function"]["name"] == "get_weather"
