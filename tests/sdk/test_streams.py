"""Streams: passed through chunk by chunk, measured, recorded even when left early."""

from __future__ import annotations

import gc
import time

import openai
import pytest
from openai.types.chat import ChatCompletionChunk

import sightline
from sightline.schema import Generation
from tests.fake_openai import FakeOpenAI
from tests.sdk.conftest import USER, Capture

SLOW = {"x-fake-delay": "0.05", "x-fake-reply": "one two three four five six"}


def _plain(fake_openai: FakeOpenAI) -> openai.OpenAI:
    return openai.OpenAI(api_key="k", base_url=fake_openai.base_url)


def test_stream_yields_the_same_chunks_as_openai(
    client: sightline.Client, capture: Capture, fake_openai: FakeOpenAI
) -> None:
    expected = [
        c.model_dump(exclude={"id", "created"})
        for c in _plain(fake_openai).chat.completions.create(
            model="gpt-4o-mini", messages=[USER], stream=True
        )
    ]
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=[USER], stream=True)

    assert isinstance(stream, openai.Stream)
    chunks = list(stream)
    assert all(type(c) is ChatCompletionChunk for c in chunks)
    sightline_extras = {"sightline_feedback_key", "sightline_generation_id"}
    got = [c.model_dump(exclude={"id", "created", *sightline_extras}) for c in chunks]
    assert got == expected  # the usage chunk Sightline asked for is not shown
    assert [c.to_dict() for c in chunks][1].keys() == {
        "id",
        "object",
        "created",
        "model",
        "choices",
        *sightline_extras,
    }
    body = capture.one()
    Generation.model_validate(body)
    assert body["output"] == {"type": "text", "content": f"Fake reply to: {USER['content']}", "tokens": 11}
    assert body["usage"]["completionTokens"] == 11
    assert body["parameters"] == {"stream": True}
    assert body["performance"]["timeToFirstToken"] <= body["performance"]["latency"]
    assert body["status"] == "ok"
    sent = fake_openai.requests()[-1]["body"]
    assert sent["stream_options"] == {"include_usage": True}


def test_usage_chunk_is_kept_when_the_caller_asked_for_it(client: sightline.Client, capture: Capture) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[USER], stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert capture.one()["usage"]["completionTokens"] == 11


def test_chunks_reach_the_caller_as_they_arrive(client: sightline.Client, capture: Capture) -> None:
    started = time.perf_counter()
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[USER], stream=True, extra_headers=SLOW
    )
    arrivals = [time.perf_counter() - started for _ in stream]
    assert arrivals[-1] - arrivals[0] > 0.25  # six words 50 ms apart: not buffered before the first
    body = capture.one()
    assert body["performance"]["timeToFirstToken"] < body["performance"]["latency"] - 200
    assert body["output"]["content"] == "one two three four five six"


def test_a_stream_left_early_is_recorded_as_incomplete(client: sightline.Client, capture: Capture) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[USER], stream=True, extra_headers=SLOW
    )
    for n, _ in enumerate(stream):
        if n == 2:
            break
    del stream
    gc.collect()
    body = capture.one()
    assert body["status"] == "error"
    assert body["error"]["type"] == "incomplete_stream"
    assert body["output"]["content"] == "one two"
    Generation.model_validate(body)


def test_a_closed_stream_is_recorded_once(client: sightline.Client, capture: Capture) -> None:
    with client.chat.completions.create(
        model="gpt-4o-mini", messages=[USER], stream=True, extra_headers=SLOW
    ) as stream:
        next(stream)
        next(stream)
    stream.close()
    body = capture.one()
    assert body["error"]["type"] == "incomplete_stream"
    assert body["output"]["content"] == "one"


def test_a_stream_never_iterated_is_recorded_when_dropped(client: sightline.Client, capture: Capture) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=[USER], stream=True)
    gc.collect()
    body = capture.one()
    assert body["error"]["type"] == "incomplete_stream"
    assert body["output"] == {}


def test_a_stream_read_to_its_last_content_chunk_is_complete(
    client: sightline.Client, capture: Capture
) -> None:
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=[USER], stream=True)
    while True:
        chunk = next(stream)
        if chunk.choices and chunk.choices[0].finish_reason:
            break
    stream.close()
    assert capture.one()["status"] == "ok"


def test_an_error_in_the_middle_of_a_stream_is_recorded_and_raised(
    client: sightline.Client, capture: Capture
) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[USER], stream=True, extra_headers={"x-fake-fail-after": "3"}
    )
    received = []
    with pytest.raises(openai.APIError, match="Fake stream failure"):
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 3
    body = capture.one()
    assert body["status"] == "error"
    assert body["error"]["type"] == "APIError"
    assert body["output"]["content"] == "Fake reply"


def test_streamed_tool_calls_are_merged(client: sightline.Client, capture: Capture) -> None:
    list(client.chat.completions.create(model="tool-call", messages=[USER], stream=True))
    output = capture.one()["output"]
    assert output["type"] == "json"
    assert output["content"]["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]


def test_n_choices_become_alternatives(client: sightline.Client, capture: Capture) -> None:
    list(client.chat.completions.create(model="gpt-4o-mini", messages=[USER], stream=True, n=2))
    output = capture.one()["output"]
    assert output["content"] == output["alternatives"][0]["content"]


def test_completion_stream(client: sightline.Client, capture: Capture) -> None:
    text = "".join(c.choices[0].text for c in client.completions.create(model="m", prompt="Hi", stream=True))
    body = capture.one()
    assert body["output"]["content"] == text == "Fake reply to: Hi"
    assert body["usage"]["completionTokens"] == 4


def test_stream_helper_of_openai_is_recorded(client: sightline.Client, capture: Capture) -> None:
    with client.chat.completions.stream(model="gpt-4o-mini", messages=[USER]) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == f"Fake reply to: {USER['content']}"
    assert capture.one()["output"]["content"] == final.choices[0].message.content


async def test_async_stream(aclient: sightline.AsyncClient, capture: Capture) -> None:
    stream = await aclient.chat.completions.create(model="gpt-4o-mini", messages=[USER], stream=True)
    assert isinstance(stream, openai.AsyncStream)
    pieces = [c.choices[0].delta.content async for c in stream if c.choices]
    assert "".join(p or "" for p in pieces) == f"Fake reply to: {USER['content']}"
    body = capture.one()
    assert body["status"] == "ok"
    assert body["usage"]["completionTokens"] == 11
    assert "timeToFirstToken" in body["performance"]


async def test_async_stream_closed_early(aclient: sightline.AsyncClient, capture: Capture) -> None:
    async with await aclient.chat.completions.create(
        model="gpt-4o-mini", messages=[USER], stream=True, extra_headers=SLOW
    ) as stream:
        async for _ in stream:
            break
    body = capture.one()
    assert body["error"]["type"] == "incomplete_stream"
