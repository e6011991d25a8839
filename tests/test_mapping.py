"""The one mapping of an OpenAI call to a Generation (``sightline.mapping``).

The SDK maps the ``openai`` client's response objects, the gateway the JSON it forwarded: the same
call must give the same record either way, and mapping it must change nothing it was given.
"""

from __future__ import annotations

import ast
import copy
import sys
from pathlib import Path
from typing import Any

import pytest
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from sightline import mapping
from sightline.schema import Generation

REQUEST = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"}]},
    ],
    "temperature": 0.2,
    "top_p": 0.9,
    "max_tokens": 20,
    "stop": "\n",
    "n": 2,
    "seed": 7,
    "stream_options": {"include_usage": True},
    "extra_body": {"reasoning_effort": "low"},
}
USAGE = {
    "prompt_tokens": 9,
    "completion_tokens": 4,
    "total_tokens": 13,
    "prompt_tokens_details": {"cached_tokens": 2},
    "completion_tokens_details": {"reasoning_tokens": 1},
}
ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 1,
            "message": {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            "finish_reason": "tool_calls",
            "logprobs": None,
        },
        {
            "index": 0,
            "message": {"role": "assistant", "content": "A cat.", "refusal": None},
            "finish_reason": "stop",
            "logprobs": None,
        },
    ],
    "usage": USAGE,
}


def _chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": choices,
        "usage": usage,
    }


CHUNKS = [
    _chunk([{"index": 0, "delta": {"role": "assistant", "content": "A "}, "finish_reason": None}]),
    _chunk(
        [
            {
                "index": 1,
                "delta": {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{"},
                        }
                    ],
                },
                "finish_reason": None,
            }
        ]
    ),
    _chunk([{"index": 0, "delta": {"content": "cat."}, "finish_reason": "stop"}]),
    _chunk(
        [
            {
                "index": 1,
                "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]},
                "finish_reason": "tool_calls",
            }
        ]
    ),
    _chunk([], USAGE),
]


def _record(kind: str, request: dict[str, Any], answer: Any = None, **kwargs: Any) -> dict[str, Any]:
    return mapping.generation(
        kind,
        request,
        answer,
        generation_id="0190a8e2-0000-7000-8000-000000000001",
        timestamp=mapping.iso(1_700_000_000.0),
        started=100.0,
        ended=100.5,
        **kwargs,
    )


def test_a_chat_answer_maps_to_the_documented_record() -> None:
    body = _record("chat", REQUEST, ANSWER, provider="openai", request_id="req_1", metadata={"plan": "pro"})

    Generation.model_validate(body)
    assert body["timestamp"] == "2023-11-14T22:13:20+00:00"
    assert body["model"] == {"id": "gpt-4o-mini", "version": "gpt-4o-mini-2024-07-18", "provider": "openai"}
    assert body["input"] == {"type": "text", "content": REQUEST["messages"], "tokens": 9}
    assert body["output"] == {
        "type": "text",
        "content": "A cat.",
        "tokens": 4,
        "alternatives": [
            {
                "content": {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                    ],
                }
            }
        ],
    }
    assert body["parameters"] == {
        "temperature": 0.2,
        "topP": 0.9,
        "maxTokens": 20,
        "stopSequences": ["\n"],
        "n": 2,
        "seed": 7,
        "reasoning_effort": "low",
    }
    assert body["usage"] == {
        "promptTokens": 9,
        "completionTokens": 4,
        "totalTokens": 13,
        "cachedTokens": 2,
        "reasoningTokens": 1,
    }
    assert body["metadata"] == {"plan": "pro", "requestId": "req_1"}
    assert body["performance"] == {"latency": 500.0, "tokensPerSecond": 8.0}
    assert body["status"] == "ok" and "error" not in body
    image = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]}
    assert _record("chat", {**REQUEST, "messages": [image]}, ANSWER)["input"]["type"] == "multimodal"


def test_the_response_objects_of_the_openai_client_give_the_same_record_as_its_json() -> None:
    from_json = _record("chat", REQUEST, ANSWER)
    from_objects = _record("chat", REQUEST, ChatCompletion.model_validate(ANSWER))
    assert from_objects == from_json

    streamed_json = _record("chat", REQUEST, chunks=CHUNKS, first=100.1)
    streamed_objects = _record(
        "chat", REQUEST, chunks=[ChatCompletionChunk.model_validate(c) for c in CHUNKS], first=100.1
    )
    assert streamed_objects == streamed_json
    # A stream records what the same answer unstreamed records, plus its time to the first token.
    assert streamed_json["output"] == from_json["output"]
    assert streamed_json["usage"] == from_json["usage"]
    assert streamed_json["performance"]["timeToFirstToken"] == 100.0

    completion = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "gpt-3.5-turbo-instruct",
        "choices": [{"index": 0, "text": "Hi there", "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4},
    }
    request = {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi"}
    assert _record("completion", request, Completion.model_validate(completion)) == _record(
        "completion", request, completion
    )

    vectors = {
        "object": "list",
        "model": "text-embedding-3-small",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.5, 0.25, 0.0]}],
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }
    request = {"model": "text-embedding-3-small", "input": "a b"}
    embedded = _record("embedding", request, vectors)
    assert _record("embedding", request, CreateEmbeddingResponse.model_validate(vectors)) == embedded
    assert embedded["output"] == {"type": "other", "content": {"embeddings": 1, "dimensions": 3}}
    base64_vectors = copy.deepcopy(vectors)
    base64_vectors["data"][0]["embedding"] = "AAAAPwAAgD4AAAAA"  # the same three float32s
    assert _record("embedding", request, base64_vectors)["output"] == embedded["output"]


def test_mapping_reads_fields_and_never_dumps_the_response_model(monkeypatch: pytest.MonkeyPatch) -> None:
    answer = ChatCompletion.model_validate(ANSWER)
    chunks = [ChatCompletionChunk.model_validate(c) for c in CHUNKS]
    expected = (_record("chat", REQUEST, answer), _record("chat", REQUEST, chunks=chunks))

    def dumped(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the whole response model was dumped")

    monkeypatch.setattr(ChatCompletion, "model_dump", dumped)
    monkeypatch.setattr(ChatCompletionChunk, "model_dump", dumped)
    assert (_record("chat", REQUEST, answer), _record("chat", REQUEST, chunks=chunks)) == expected


@pytest.mark.parametrize(
    "kind, request_, answer, chunks, error",
    [
        ("chat", REQUEST, ANSWER, None, None),
        ("chat", REQUEST, None, CHUNKS, None),
        (
            "chat",
            REQUEST,
            None,
            [*CHUNKS[:2], {"error": {"message": "broke off", "type": "server_error"}}],
            None,
        ),
        ("chat", REQUEST, None, None, {"type": "RateLimitError", "message": "slow down", "statusCode": 429}),
        ("embedding", {"model": "e", "input": ["a", "b"]}, {"data": [{"embedding": [1.0]}]}, None, None),
        ("other", {"model": "m", "file": "f", "purpose": "p"}, {"id": "x", "nested": {"a": [1]}}, None, None),
    ],
)
def test_mapping_changes_nothing_it_is_given(
    kind: str, request_: dict[str, Any], answer: Any, chunks: Any, error: Any
) -> None:
    given = copy.deepcopy((request_, answer, chunks, error))
    body = _record(kind, request_, answer, chunks=chunks, error=error, metadata={"k": "v"})
    Generation.model_validate(body)
    assert (request_, answer, chunks, error) == given
    # ... and the record does not hand back the caller's error or metadata to be changed under it
    if error is not None:
        body["error"]["message"] = "changed"
        assert error["message"] == "slow down"


def test_a_stream_that_broke_off_is_an_error_with_what_arrived() -> None:
    broken = [*CHUNKS[:1], {"error": {"message": "broke off", "type": "server_error"}}]
    body = _record("chat", REQUEST, chunks=broken)
    assert body["status"] == "error"
    assert body["error"] == {"type": "server_error", "message": "broke off"}
    assert body["output"]["content"] == "A "


def test_errors_of_the_client_and_of_the_upstream() -> None:
    import httpx
    import openai

    response = httpx.Response(429, request=httpx.Request("POST", "https://api.test/v1/chat/completions"))
    exc = openai.RateLimitError("slow down", response=response, body=None)
    assert mapping.exception_error(exc) == {
        "type": "RateLimitError",
        "message": "slow down",
        "statusCode": 429,
    }
    assert mapping.exception_error(KeyboardInterrupt()) == {"type": "KeyboardInterrupt", "message": ""}

    error = {"type": "upstream_error", "message": "the upstream answered 429", "statusCode": 429}
    answer = {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}
    assert mapping.upstream_error(error, answer) == {
        "type": "rate_limit_error",
        "message": "Rate limit reached",
        "statusCode": 429,
    }
    assert error["message"] == "the upstream answered 429"
    assert mapping.upstream_error(error, {"detail": "no"}) == error


def test_plain_turns_client_objects_into_json() -> None:
    class NotGiven:  # the openai client's sentinel, as the mapping knows it: by name
        pass

    message = ChatCompletion.model_validate(ANSWER).choices[1].message
    value = {"a": NotGiven(), "b": (1, 2), "c": message, "d": b"xyz", "e": ChatCompletion}
    assert mapping.plain(value) == {
        "b": [1, 2],
        "c": {"role": "assistant", "content": "A cat."},
        "d": "<3 bytes>",
        "e": str(ChatCompletion),
    }
    strings = {"role": "user", "content": "hi"}
    assert mapping.plain(strings) is strings
    # A dict of strings is kept only when its keys are strings too; its neighbours in a list stay.
    assert mapping.plain([{1: "a"}, strings, "s"]) == [{"1": "a"}, strings, "s"]
    assert mapping.plain({"role": "user", "n": 1}) == {"role": "user", "n": 1}


def test_mapping_is_a_leaf_of_the_standard_library_and_the_schema() -> None:
    source = Path(mapping.__file__).read_text()
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
    outside = {
        name
        for name in imported
        if name.split(".")[0] not in sys.stdlib_module_names
        and name not in {"__future__", "sightline.schema"}
    }
    assert not outside, outside
