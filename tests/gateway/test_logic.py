"""The gateway's pure logic: cache keys, request headers, SSE relay/assembly/replay, the recorded body."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from sightline.errors import InvalidInput
from sightline.gateway import (
    Call,
    StreamRelay,
    answer_text,
    assemble,
    cache_key,
    parse_context,
    replay,
    split_headers,
)
from sightline.gateway.context import Context
from sightline.gateway.forwarding.upstream import Target
from sightline.gateway.recording.capture import generation_body
from sightline.gateway.recording.recorder import Recorder
from sightline.schema import Generation
from sightline.store import Scope
from sightline.store.engine.writer import QueuedWriter

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "temperature": 0.2}


def test_cache_key_ignores_order_stream_and_caller_fields() -> None:
    base = cache_key(1, "chat/completions", CHAT)
    reordered = {"temperature": 0.2, "messages": [{"content": "Hi", "role": "user"}], "model": "gpt-4o-mini"}
    assert cache_key(1, "chat/completions", reordered) == base
    extras = {
        **CHAT,
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "u1",
        "openaikey_id": 3,
    }
    assert cache_key(1, "/v1/chat/completions/", extras) == base
    assert cache_key(2, "chat/completions", CHAT) != base  # per project
    assert cache_key(1, "completions", CHAT) != base  # per endpoint
    assert cache_key(1, "chat/completions", {**CHAT, "temperature": 0.3}) != base


def test_split_headers_keeps_credentials_and_sightline_headers_apart() -> None:
    raw = [
        (b"host", b"x"),
        (b"authorization", b"Bearer sl_abc"),
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", b"12"),
        (b"x-sightline-user-id", b"alice"),
        (b"openai-organization", b"org-1"),
        (b"accept-encoding", b"gzip"),
    ]
    h = split_headers(raw)
    assert h.authorization == "Bearer sl_abc" and h.content_length == 12
    assert h.content_type == "application/json"
    assert h.sightline == {"x-sightline-user-id": "alice"}
    assert h.forward == {"content-type": "application/json; charset=utf-8", "openai-organization": "org-1"}


def test_context_headers_are_checked() -> None:
    ctx = parse_context(
        {
            "x-sightline-user-id": "alice",
            "x-sightline-run-id": "run-1",
            "x-sightline-metadata": '{"plan": "pro", "beta": true, "sessionId": "s1", '
            '"doc": {"type": "url", "url": "https://x", "text": "x"}}',
            "x-sightline-cache": "Refresh",
        }
    )
    assert ctx.user_id == "alice" and ctx.run_id == "run-1" and ctx.cache == "refresh"
    assert ctx.session_id == "s1"
    assert ctx.metadata["plan"] == {"type": "string", "value": "pro"}
    assert ctx.metadata["beta"] == {"type": "boolean", "value": True}
    for headers, words in [
        ({"x-sightline-metadata": "{nope"}, "X-Sightline-Metadata: not valid JSON"),
        ({"x-sightline-metadata": '{"deep": {"a": {"b": 1}}}'}, "'deep'"),
        ({"x-sightline-metadata": "[1]"}, "metadata must be an object"),
        ({"x-sightline-cache": "always"}, "X-Sightline-Cache"),
        ({"x-sightline-user-id": "u" * 201}, "X-Sightline-User-Id"),
    ]:
        with pytest.raises(InvalidInput) as caught:
            parse_context(headers)
        assert words in caught.value.message


def _chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return orjson.dumps(
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [choice],
            **extra,
        }
    )


USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def _stream(include_usage: bool) -> bytes:
    events = [_chunk({"role": "assistant", "content": "Hel"}), _chunk({"content": "lo"}), _chunk({}, "stop")]
    if include_usage:
        events.append(
            orjson.dumps(
                {
                    "id": "c1",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": "m",
                    "choices": [],
                    "usage": USAGE,
                }
            )
        )
    return b"".join(b"data: " + e + b"\n\n" for e in events) + b"data: [DONE]\n\n"


@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
def test_relay_passes_whole_events_and_hides_the_usage_chunk(size: int) -> None:
    raw = _stream(include_usage=True)
    relay = StreamRelay(hide_usage=True)
    out = b"".join(relay.feed(raw[i : i + size]) for i in range(0, len(raw), size)) + relay.flush()
    assert out == _stream(include_usage=False)
    answer, error = assemble("chat", relay.events)
    assert error is None and answer is not None
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "Hello"}
    assert answer["choices"][0]["finish_reason"] == "stop" and answer["usage"] == USAGE


def test_relay_keeps_the_usage_chunk_a_caller_asked_for_and_handles_crlf() -> None:
    raw = _stream(include_usage=True).replace(b"\n", b"\r\n")
    relay = StreamRelay(hide_usage=False)
    out = relay.feed(raw[:50]) + relay.feed(raw[50:]) + relay.flush()
    assert out == _stream(include_usage=True)


def test_replay_of_a_cached_answer_is_the_stream_it_came_from() -> None:
    relay = StreamRelay(hide_usage=False)
    relay.feed(_stream(include_usage=True))
    answer, _ = assemble("chat", relay.events)
    assert answer is not None
    for include_usage in (True, False):
        again = StreamRelay(hide_usage=False)
        again.feed(replay("chat", answer, include_usage))
        assert again.events[-1] == b"[DONE]"
        replayed, _ = assemble("chat", again.events)
        assert replayed is not None
        assert replayed["choices"] == answer["choices"]
        assert ("usage" in replayed) is include_usage


def test_tool_calls_and_text_completions_assemble() -> None:
    calls = [
        _chunk(
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "t1",
                        "type": "function",
                        "function": {"name": "get_", "arguments": '{"ci'},
                    }
                ],
            }
        ),
        _chunk(
            {"tool_calls": [{"index": 0, "function": {"name": "weather", "arguments": 'ty": 1}'}}]},
            "tool_calls",
        ),
    ]
    answer, _ = assemble("chat", calls)
    assert answer is not None
    message = answer["choices"][0]["message"]
    assert message["tool_calls"] == [
        {"id": "t1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": 1}'}}
    ]
    text = [
        orjson.dumps(
            {
                "id": "x",
                "object": "text_completion",
                "model": "m",
                "choices": [{"index": 0, "text": t, "finish_reason": None}],
            }
        )
        for t in ("a ", "b")
    ]
    answer, _ = assemble("completion", text)
    assert answer is not None and answer_text("completion", answer) == "a b"
    relay = StreamRelay(hide_usage=False)
    relay.feed(replay("completion", answer, include_usage=False))
    again, _ = assemble("completion", relay.events)
    assert again is not None and again["choices"][0]["text"] == "a b"


def _call(body: dict[str, Any], **kw: Any) -> Call:
    call = Call(
        project_id=1,
        endpoint=kw.pop("endpoint", "chat/completions"),
        body=body,
        context=kw.pop("context", Context()),
        target=Target("https://api.openai.com/v1", "sk-x", "openai", None),
        cache_mode="use",
        stream=bool(body.get("stream")),
        hide_usage=False,
    )
    for name, value in kw.items():
        setattr(call, name, value)
    return call


ANSWER = {
    "id": "c1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}],
    "usage": {**USAGE, "prompt_tokens_details": {"cached_tokens": 1}},
}


def test_recorded_body_of_a_chat_call_validates() -> None:
    context = Context(
        user_id="alice",
        session_id="s1",
        chat_id="chat-9",
        template_name="greet",
        metadata={"plan": {"type": "string", "value": "pro"}},
    )
    call = _call(
        {**CHAT, "max_tokens": 5, "stop": "x"},
        context=context,
        status=200,
        response=orjson.dumps(ANSWER),
        request_id="req_1",
    )
    call.ended = call.started + 0.25
    body = generation_body(call)
    gen = Generation.model_validate(body)
    assert gen.model["id"] == "gpt-4o-mini" and gen.model.get("version") == "gpt-4o-mini-2024-07-18"
    assert gen.model.get("provider") == "openai"
    assert gen.output.get("content") == "Hello" and gen.output.get("tokens") == 2
    assert gen.input.get("tokens") == 3
    assert gen.usage.get("cachedTokens") == 1 and gen.usage.get("cost") is None  # priced by the server
    assert gen.parameters.get("temperature") == 0.2 and gen.parameters.get("maxTokens") == 5
    assert gen.parameters.get("stopSequences") == ["x"]
    assert gen.metadata["userId"] == "alice" and gen.metadata["sessionId"] == "s1"
    assert gen.metadata["requestId"] == "req_1" and gen.metadata["plan"]["value"] == "pro"
    assert gen.chat_id == "chat-9" and gen.template is not None and gen.template.get("name") == "greet"
    assert gen.performance.get("latency") == pytest.approx(250, abs=1)
    assert not gen.cache_hit and gen.status == "ok"


def test_recorded_cache_hit_costs_nothing_and_saves_its_price() -> None:
    call = _call(dict(CHAT), status=200, response=orjson.dumps(ANSWER), cache_hit=True)
    gen = Generation.model_validate(generation_body(call))
    assert gen.cache_hit and gen.usage.get("cost") == 0.0
    assert (gen.usage.get("costSaved") or 0) > 0


def test_recorded_upstream_error_and_run_step() -> None:
    call = _call(
        dict(CHAT),
        context=Context(user_id="alice", run_id="r1"),
        status=429,
        response=b'{"error": {"message": "slow down", "type": "rate_limit_error"}}',
    )
    call.failed("upstream_error", "the upstream answered 429", 429)
    gen = Generation.model_validate(generation_body(call))
    assert gen.status == "error" and gen.error is not None
    assert gen.error.message == "slow down" and gen.error.type == "rate_limit_error"
    assert gen.error.status_code == 429
    assert gen.run_id == "r1" and "userId" not in gen.metadata  # the run owns the user


def test_recorded_embedding() -> None:
    answer = {
        "object": "list",
        "model": "text-embedding-3-small",
        "data": [{"index": 0, "embedding": [0.1] * 4}, {"index": 1, "embedding": [0.2] * 4}],
        "usage": {"prompt_tokens": 4, "total_tokens": 4},
    }
    call = _call(
        {"model": "text-embedding-3-small", "input": ["a", "b"]},
        endpoint="embeddings",
        status=200,
        response=orjson.dumps(answer),
    )
    gen = Generation.model_validate(generation_body(call))
    assert gen.output.get("type") == "other"
    assert gen.output.get("content") == {"embeddings": 2, "dimensions": 4}
    assert gen.input.get("content") == ["a", "b"] and gen.usage.get("promptTokens") == 4
    assert answer_text("embedding", answer) == [0.1] * 4


class _Writer(QueuedWriter):
    """Takes write operations and answers them at once."""

    commits = 0

    def __init__(self) -> None:
        self.ops: list[Any] = []

    def start(self) -> None:
        pass

    def stop(self, timeout: float = 10.0) -> None:
        pass

    def depth(self) -> int:
        return 0

    def put(self, op: Any, resolve: Any) -> None:
        self.ops.append(op)
        resolve([True] * op.size, None)


async def test_recording_is_handed_over_sooner_when_the_gateway_is_lightly_loaded() -> None:
    in_flight = 0
    writer = _Writer()
    recorder = Recorder(writer, interval=0.5, quick_interval=0.01, in_flight=lambda: in_flight)
    scope = Scope(1, "dev")
    ok = {"status": 200, "response": orjson.dumps(ANSWER)}
    recorder.add(scope, _call(dict(CHAT), **ok))
    await asyncio.sleep(0.2)  # one request in flight at most: handed over after the quick interval
    assert len(writer.ops) == 1 and recorder.recorded == 1

    in_flight = 10  # busy: calls wait for the longer interval, to make fewer and bigger commits
    recorder.add(scope, _call(dict(CHAT), **ok))
    recorder.add(scope, _call(dict(CHAT), **ok))
    await asyncio.sleep(0.2)
    assert len(writer.ops) == 1
    await asyncio.sleep(0.5)
    assert len(writer.ops) == 2 and writer.ops[1].size == 2 and recorder.recorded == 3


def test_recording_a_call_changes_nothing_of_the_call() -> None:
    import copy

    def state(call: Call) -> dict[str, Any]:
        return {name: copy.deepcopy(getattr(call, name)) for name in Call.__slots__ if name != "context"}

    refused = _call(
        dict(CHAT),
        status=429,
        response=b'{"error": {"message": "slow down", "type": "rate_limit_error"}}',
    )
    refused.failed("upstream_error", "the upstream answered 429", 429)
    broken = _call(
        {**CHAT, "stream": True},
        status=200,
        events=[
            _chunk({"role": "assistant", "content": "Hel"}),
            orjson.dumps({"error": {"message": "broke off", "type": "server_error"}}),
        ],
    )
    for call in (refused, broken):
        before = state(call)
        gen = Generation.model_validate(generation_body(call))
        assert gen.status == "error" and gen.error is not None
        assert state(call) == before
    assert generation_body(broken)["error"] == {"type": "server_error", "message": "broke off"}
    assert broken.error is None and broken.outcome == "ok"  # the record says so; the call is as it was
