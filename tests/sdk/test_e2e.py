"""Each user scenario of the SDK against a real ``sightline serve`` (SQLite) and the real openai client.

Every test ends by reading the generation (or run) back from the server's API.
"""

from __future__ import annotations

import gc
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

import sightline
from sightline.sdk import _worker
from tests.conftest import sightline_command, start_server, stop_server
from tests.fake_openai import FakeOpenAI

USER = {"role": "user", "content": "Show me an emoji for the sport: soccer"}


class Live:
    """A real server process and a reader of its API."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = key
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=10)

    def config(self, **overrides: Any) -> sightline.SightlineConfig:
        return sightline.SightlineConfig(api_key=self.key, server_url=self.url, **overrides)

    def generation(self, generation_id: str) -> dict[str, Any]:
        assert sightline.flush(10)
        response = self.http.get(f"/api/generations/{generation_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def generations(self, **filters: str) -> list[dict[str, Any]]:
        assert sightline.flush(10)
        response = self.http.get("/api/generations", params=filters)
        assert response.status_code == 200, response.text
        return list(response.json()["data"])

    def run(self, run_id: str) -> dict[str, Any]:
        assert sightline.flush(10)
        response = self.http.get(f"/api/runs/{run_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, fake_openai: FakeOpenAI) -> Iterator[Live]:
    """``sightline serve`` on a temporary SQLite file, and a key from ``sightline token create``.

    Its gateway (``/v1``) forwards to the fake provider the SDK calls directly.
    """
    tmp: Path = tmp_path_factory.mktemp("sightline")
    database_url = f"sqlite:///{tmp / 'server.db'}"
    made = subprocess.run(
        [*sightline_command(), "token", "create", "--project", "demo", "--environment", "dev"],
        env={**os.environ, "SIGHTLINE_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if made.returncode != 0:
        pytest.skip(f"`sightline token create` does not work yet: {made.stderr[-300:]}")
    upstream = {"SIGHTLINE_UPSTREAM_URL": fake_openai.base_url, "SIGHTLINE_UPSTREAM_API_KEY": "sk-upstream"}
    process, url = start_server(database_url, tmp / "server.log", env=upstream)
    server = Live(url, made.stdout.strip().splitlines()[-1])
    yield server
    server.http.close()
    stop_server(process)


@pytest.fixture
def client(live: Live, fake_openai: FakeOpenAI) -> Iterator[sightline.Client]:
    _worker.reset()
    yield sightline.Client(api_key="sk-upstream", base_url=fake_openai.base_url, sightline=live.config())
    _worker.reset(timeout=5)


def _key(response: Any) -> str:
    return str(response.model_extra["sightline_feedback_key"])


def _id(response: Any) -> str:
    from sightline.feedback_key import parse_feedback_key

    return parse_feedback_key(_key(response))[0]


def test_drop_in_chat_is_recorded_with_usage_cost_and_timings(live: Live, client: sightline.Client) -> None:
    response = client.chat.completions.create(model="gpt-4o-mini", messages=[USER], temperature=0.5)
    generation = live.generation(_id(response))
    assert generation["model"]["id"] == "gpt-4o-mini"
    assert generation["input"]["content"] == [USER]
    assert generation["output"]["content"] == response.choices[0].message.content
    assert generation["parameters"]["temperature"] == 0.5
    assert generation["usage"]["promptTokens"] == response.usage.prompt_tokens  # type: ignore[union-attr]
    assert generation["usage"]["completionTokens"] == response.usage.completion_tokens  # type: ignore[union-attr]
    assert generation["usage"].get("cost") is not None  # priced by the server from the token counts
    assert generation["performance"]["latency"] > 0
    assert generation["performance"]["tokensPerSecond"] > 0
    assert generation["status"] == "ok"


def test_streamed_chat_is_recorded_with_time_to_first_token(live: Live, client: sightline.Client) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[USER], stream=True, extra_headers={"x-fake-delay": "0.02"}
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    generation = live.generation(_stream_id(stream))
    assert generation["output"]["content"] == text
    assert generation["usage"]["completionTokens"] == len(text.split())
    assert 0 < generation["performance"]["timeToFirstToken"] < generation["performance"]["latency"]
    assert generation["parameters"]["stream"] is True


def _stream_id(stream: Any) -> str:
    from sightline.feedback_key import parse_feedback_key

    return parse_feedback_key(stream.sightline_feedback_key)[0]


def test_abandoned_stream_is_recorded_with_its_partial_output(live: Live, client: sightline.Client) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[USER],
        stream=True,
        extra_headers={"x-fake-delay": "0.02", "x-fake-reply": "a b c d e f"},
    )
    generation_id = _stream_id(stream)
    for n, _ in enumerate(stream):
        if n == 2:
            break
    del stream
    gc.collect()
    generation = live.generation(generation_id)
    assert generation["status"] == "error"
    assert generation["error"]["type"] == "incomplete_stream"
    assert generation["output"]["content"] == "a b"


def test_completions_embeddings_and_async(
    live: Live, client: sightline.Client, fake_openai: FakeOpenAI
) -> None:
    completion = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Hello")
    embedding = client.embeddings.create(model="text-embedding-3-small", input="Hello")

    async def call() -> Any:
        aclient = sightline.AsyncClient(api_key="k", base_url=fake_openai.base_url, sightline=live.config())
        return await aclient.chat.completions.create(model="gpt-4o-mini", messages=[USER])

    import asyncio

    chat = asyncio.run(call())
    assert live.generation(_id(completion))["output"]["content"] == completion.choices[0].text
    assert live.generation(_id(embedding))["output"]["content"] == {"embeddings": 1, "dimensions": 8}
    assert live.generation(_id(chat))["status"] == "ok"


def test_upstream_error_is_recorded(live: Live, client: sightline.Client) -> None:
    event_id = str(uuid.uuid4())
    with pytest.raises(openai.InternalServerError):
        client.with_options(max_retries=0).chat.completions.create(
            model="gpt-4o-mini",
            messages=[USER],
            extra_headers={"x-fake-status": "500"},
            sightline={"event_id": event_id},
        )
    generation = live.generation(event_id)
    assert generation["status"] == "error"
    assert generation["error"]["statusCode"] == 500
    assert generation["error"]["type"] == "InternalServerError"


def test_templates_and_call_params(live: Live, client: sightline.Client) -> None:
    event_id = str(uuid.uuid4())
    chat_id = f"chat-{uuid.uuid4().hex[:8]}"
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=sightline.TemplateChat(
            [{"role": "user", "content": "Show me an emoji for the sport: {sport}"}], {"sport": "soccer"}
        ),
        sightline=sightline.CallParams(
            event_id=event_id,
            chat_id=chat_id,
            user_id="user-42",
            prompt_template_name="emoji",
            metadata={"plan": "pro", "docs": {"type": "url", "url": "https://x.test", "text": "docs"}},
        ),
    )
    generation = live.generation(event_id)
    assert generation["input"]["content"] == [USER]
    assert generation["template"]["name"] == "emoji"
    assert generation["template"]["params"] == {"sport": "soccer"}
    assert generation["template"]["chat"][0]["content"] == "Show me an emoji for the sport: {sport}"
    assert len(generation["template"]["version"]) == 16
    assert generation["chatId"] == chat_id
    assert generation["metadata"]["userId"] == "user-42"
    assert generation["metadata"]["plan"] == {"type": "string", "value": "pro"}
    assert generation["metadata"]["docs"] == {"type": "url", "url": "https://x.test", "text": "docs"}
    assert [g["id"] for g in live.generations(chatId=chat_id)] == [event_id]
    assert event_id in [g["id"] for g in live.generations(**{"template.name": "emoji"})]


def test_context_user_and_metadata(live: Live, client: sightline.Client) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    with sightline.context(user_id=user, session_id="s-1", metadata={"team": "search"}):
        response = client.chat.completions.create(model="gpt-4o-mini", messages=[USER])
    generation = live.generation(_id(response))
    assert generation["metadata"]["sessionId"] == "s-1"
    assert generation["metadata"]["team"] == {"type": "string", "value": "search"}
    assert [g["id"] for g in live.generations(userId=user)] == [_id(response)]


def test_pipeline_run_with_steps(live: Live, client: sightline.Client) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    pipeline = sightline.Pipeline("compose", client=client)
    with pipeline.start({"userId": user, "metadata": {"plan": "free"}}) as run:
        run.step("retrieve", inputs={"query": "soccer"}, outputs=["doc-1"])
        first = run.openai.chat.completions.create(model="gpt-4o-mini", messages=[USER])
        second = run.openai.chat.completions.create(
            model="gpt-4o-mini", messages=[USER], sightline={"metadata": {"plan": "pro"}}
        )
        with pytest.raises(ValueError, match="belongs to the run"):
            run.step("bad", user_id="someone-else")
    stored = live.run(run.id)
    assert stored["userId"] == user
    assert stored["status"] == "ok"
    assert stored["metadata"]["plan"] == {"type": "string", "value": "pro"}
    assert [(s["kind"], s.get("name") or s["id"]) for s in stored["steps"]] == [
        ("step", "retrieve"),
        ("generation", _id(first)),
        ("generation", _id(second)),
    ]
    by_user = {g["id"] for g in live.generations(userId=user)}
    assert by_user == {_id(first), _id(second)}
    assert {g["id"] for g in live.generations(runId=run.id)} == by_user


def test_failed_pipeline_block_records_an_error(live: Live, client: sightline.Client) -> None:
    with pytest.raises(KeyError), sightline.Pipeline("compose", client=client).start() as run:
        raise KeyError("missing")
    stored = live.run(run.id)
    assert stored["status"] == "error"


def test_feedback_reaches_the_generation(live: Live, client: sightline.Client) -> None:
    response = client.chat.completions.create(model="gpt-4o-mini", messages=[USER])
    client.send_feedback(feedback_key=_key(response), rating=0.2, better_response="⚽", thumbs="down")
    generation = live.generation(_id(response))
    assert generation["feedback"]["score"] == 0.2
    assert generation["feedback"]["betterResponse"] == "⚽"
    assert generation["feedback"]["thumbs"] == "down"


def test_redaction_before_anything_leaves(live: Live, fake_openai: FakeOpenAI) -> None:
    _worker.reset()
    client = sightline.Client(
        api_key="k", base_url=fake_openai.base_url, sightline=live.config(redact_pii=True)
    )
    response = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "I am ann@example.com, card 4111 1111 1111 1111"}],
    )
    generation = live.generation(_id(response))
    assert generation["input"]["content"][0]["content"] == "I am <EMAIL>, card <CREDIT_CARD>"
    assert "ann@example.com" not in str(generation)
    _worker.reset(timeout=5)


def test_many_threads_lose_nothing(live: Live, client: sightline.Client) -> None:
    from concurrent.futures import ThreadPoolExecutor

    chat_id = f"threads-{uuid.uuid4().hex[:8]}"

    def call(_: int) -> str:
        return _id(
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[USER], sightline={"chat_id": chat_id}
            )
        )

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(call, range(200)))
    assert sightline.flush(20)
    stats = sightline.stats()
    assert (stats.dropped, stats.failed, stats.rejected) == (0, 0, 0)
    stored: set[str] = set()
    cursor = None
    while True:
        params = {"chatId": chat_id, "limit": "1000", **({"cursor": cursor} if cursor else {})}
        page = live.http.get("/api/generations", params=params).json()
        stored |= {g["id"] for g in page["data"]}
        cursor = page.get("nextCursor")
        if not cursor:
            break
    assert stored == ids


def test_a_dead_server_never_slows_or_fails_the_call(fake_openai: FakeOpenAI) -> None:
    _worker.reset()
    config = sightline.SightlineConfig(api_key="sl_k", server_url="http://127.0.0.1:9")
    client = sightline.Client(api_key="k", base_url=fake_openai.base_url, sightline=config)
    started = time.perf_counter()
    for _ in range(20):
        client.chat.completions.create(model="gpt-4o-mini", messages=[USER])
    assert time.perf_counter() - started < 5
    assert sightline.flush(0.2) is False
    _worker.reset(timeout=0.1)


# -- the libretto document's usage, taken literally ----------------------------------------------


def test_uuid_objects_are_taken_wherever_an_id_is(live: Live, client: sightline.Client) -> None:
    chain_id, event_id, user, session = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    chat_id = uuid.UUID(f"{uuid.uuid4()}")
    first = client.completions.create(
        model="gpt-3.5-turbo-instruct",
        prompt="Say hi",
        sightline=sightline.CallParams(
            event_id=event_id, chain_id=chain_id, chat_id=chat_id, user_id=user, session_id=session
        ),
    )
    second = client.completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Say bye", sightline={"chain_id": chain_id}
    )
    generation = live.generation(str(event_id))
    assert _id(first) == str(event_id)
    assert generation["runId"] == str(chain_id) and generation["chatId"] == str(chat_id)
    assert generation["metadata"]["sessionId"] == str(session)
    chain = live.run(str(chain_id))
    assert chain["userId"] == str(user)  # the chain, a run, owns the user
    assert [s["id"] for s in chain["steps"]] == [str(event_id), _id(second)]

    scoped_user, scoped_chat = uuid.uuid4(), uuid.uuid4()
    with sightline.context(user_id=scoped_user, chat_id=scoped_chat, session_id=session):
        scoped = client.chat.completions.create(model="gpt-4o-mini", messages=[USER])
    assert [g["id"] for g in live.generations(userId=str(scoped_user))] == [_id(scoped)]
    assert live.generation(_id(scoped))["chatId"] == str(scoped_chat)

    run_id, run_user = uuid.uuid4(), uuid.uuid4()
    with sightline.Pipeline("compose", client=client).start(user_id=run_user, run_id=run_id) as run:
        step = run.openai.chat.completions.create(model="gpt-4o-mini", messages=[USER])
    assert live.run(str(run_id))["userId"] == str(run_user)
    assert live.generation(_id(step))["runId"] == str(run_id)

    client.send_feedback(generation_id=event_id, rating=1.0, user_id=user)
    feedback = live.generation(str(event_id))["feedback"]
    assert feedback["score"] == 1.0 and feedback["userId"] == str(user)


def test_template_role_ai_is_sent_as_assistant_and_recorded_as_written(
    live: Live, client: sightline.Client, fake_openai: FakeOpenAI
) -> None:
    template = [
        {"role": "ai", "content": "Hello, I'm {system_name}!"},
        {"role": "user", "content": "Hi {system_name}, I'm {user_name}!"},
    ]
    params = {"system_name": "Comics Inc", "user_name": "Ann"}
    response = client.chat.completions.create(  # type: ignore[call-overload]
        model="gpt-4o-mini",
        sightline=sightline.CallParams(
            prompt_template_name="welcome", template_chat=template, template_params=params
        ),
    )
    sent = fake_openai.requests()[-1]["body"]["messages"]
    assert [m["role"] for m in sent] == ["assistant", "user"]
    generation = live.generation(_id(response))
    assert generation["input"]["content"] == [
        {"role": "assistant", "content": "Hello, I'm Comics Inc!"},
        {"role": "user", "content": "Hi Comics Inc, I'm Ann!"},
    ]
    assert generation["template"]["chat"] == template
    assert generation["template"]["params"] == params

    chat = sightline.TemplateChat(template, params)
    again = client.chat.completions.create(model="gpt-4o-mini", messages=chat)
    assert [m["role"] for m in live.generation(_id(again))["template"]["chat"]] == ["ai", "user"]


def test_a_call_that_fails_before_it_is_sent_is_no_generation(
    live: Live, client: sightline.Client, fake_openai: FakeOpenAI
) -> None:
    chat_id, chain_id = str(uuid.uuid4()), str(uuid.uuid4())
    fake_openai.clear()
    with pytest.raises(TypeError):
        client.chat.completions.create(  # type: ignore[call-overload]
            model="gpt-4o-mini",
            messages=[USER],
            not_an_argument=1,
            sightline={"chat_id": chat_id, "chain_id": chain_id},
        )
    with pytest.raises(TypeError):  # openai's own check of the required arguments
        client.chat.completions.create(model="gpt-4o-mini", sightline={"chat_id": chat_id})  # type: ignore[call-overload]

    async def async_call() -> None:
        aclient = sightline.AsyncClient(api_key="k", base_url=client.base_url, sightline=live.config())
        with pytest.raises(TypeError):
            await aclient.chat.completions.create(  # type: ignore[call-overload]
                model="gpt-4o-mini", messages=[USER], not_an_argument=1, sightline={"chat_id": chat_id}
            )

    import asyncio

    asyncio.run(async_call())
    assert fake_openai.requests() == []  # nothing reached the provider ...
    refused = client.with_options(max_retries=0).chat.completions.create
    with pytest.raises(openai.BadRequestError):  # ... unlike a call the provider refused
        refused(
            model="gpt-4o-mini", messages=[{"role": "ai", "content": "x"}], sightline={"chat_id": chat_id}
        )  # type: ignore[list-item]
    answered = client.chat.completions.create(
        model="gpt-4o-mini", messages=[USER], sightline={"chat_id": chat_id}
    )
    stored = live.generations(chatId=chat_id)
    assert [g["status"] for g in stored] == ["ok", "error"]  # newest first
    assert stored[0]["id"] == _id(answered)
    assert live.http.get(f"/api/runs/{chain_id}").status_code == 404  # its chain was not started either
    assert sightline.stats().internal_errors == 0


def test_responses_and_streams_carry_the_generation_id(live: Live, client: sightline.Client) -> None:
    response = client.chat.completions.create(model="gpt-4o-mini", messages=[USER])
    generation_id = response.model_extra["sightline_generation_id"]  # type: ignore[index]
    assert live.generation(generation_id)["output"]["content"] == response.choices[0].message.content

    completion = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Hi")
    embedding = client.embeddings.create(model="text-embedding-3-small", input="Hi")
    for answer in (completion, embedding):
        assert live.generation(answer.model_extra["sightline_generation_id"])["id"] == _id(answer)  # type: ignore[index]

    stream = client.chat.completions.create(model="gpt-4o-mini", messages=[USER], stream=True)
    chunks = list(stream)
    assert {c.model_extra["sightline_generation_id"] for c in chunks} == {stream.sightline_generation_id}  # type: ignore[index, attr-defined]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert live.generation(stream.sightline_generation_id)["output"]["content"] == text  # type: ignore[attr-defined]


# -- one mapper: the SDK and the gateway record the same call alike ------------------------------

_CALLS = {
    "chat": (
        "chat",
        {"messages": [{"role": "system", "content": "Be brief."}, USER], "n": 2, "stop": ["\n"]},
    ),
    "chat, streamed": ("chat", {"messages": [USER], "stream": True, "temperature": 0.5, "max_tokens": 40}),
    "tool call": ("chat", {"messages": [USER], "extra_headers": {"x-fake-tool": "get_weather"}, "seed": 3}),
    "tool call, streamed": (
        "chat",
        {"messages": [USER], "stream": True, "extra_headers": {"x-fake-tool": "f"}},
    ),
    "completion, streamed": ("completion", {"prompt": "Say hi", "stream": True, "top_p": 0.5}),
    "embedding": ("embedding", {"input": ["a b", "c"], "encoding_format": "float"}),
}
_MODELS = {
    "chat": "gpt-4o-mini",
    "completion": "gpt-3.5-turbo-instruct",
    "embedding": "text-embedding-3-small",
}


@pytest.mark.parametrize("shape", list(_CALLS))
def test_the_sdk_and_the_gateway_record_one_call_alike(
    live: Live, client: sightline.Client, shape: str
) -> None:
    kind, kwargs = _CALLS[shape]
    kwargs = {"model": _MODELS[kind], **kwargs}
    gateway = openai.OpenAI(api_key=live.key, base_url=f"{live.url}/v1", max_retries=0)
    resources = {
        "chat": (client.chat.completions, gateway.chat.completions),
        "completion": (client.completions, gateway.completions),
        "embedding": (client.embeddings, gateway.embeddings),
    }
    through_sdk, through_gateway = resources[kind]

    answer = through_sdk.create(**kwargs)
    sdk_id = (
        answer.sightline_generation_id
        if kwargs.get("stream")
        else answer.model_extra["sightline_generation_id"]
    )
    if kwargs.get("stream"):
        list(answer)
    raw = through_gateway.with_raw_response.create(**kwargs)
    gateway_id = raw.headers["x-sightline-generation-id"]
    if kwargs.get("stream"):
        list(raw.parse())

    by_sdk, by_gateway = live.generation(sdk_id), live.generation(gateway_id)
    for part in ("input", "output", "parameters", "status"):
        assert by_sdk[part] == by_gateway[part], part
    assert by_sdk["model"]["version"] == by_gateway["model"]["version"]
    tokens = ("promptTokens", "completionTokens", "totalTokens", "cachedTokens", "reasoningTokens")
    assert {k: by_sdk["usage"].get(k) for k in tokens} == {k: by_gateway["usage"].get(k) for k in tokens}
    assert by_sdk["output"]
