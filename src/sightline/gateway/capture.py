"""Turning a finished :class:`~.call.Call` into the Generation it records.

Runs after the caller has its answer (see :mod:`.recorder`): parsing the answer, merging stream
chunks and pricing happen there, never while the caller waits. It records what the SDK records
for the same call (input, output, parameters, usage, timings, the caller's context), plus
``cacheHit`` and, on a hit, the cost the cache saved.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

import orjson

from ..store.generations.pricing import price
from .call import Call
from .sse import assemble

__all__ = ["generation_body"]

_NOT_PARAMETERS = frozenset({"messages", "prompt", "input", "model", "stream_options", "openaikey_id"})
_RENAMED = {
    "top_p": "topP",
    "max_tokens": "maxTokens",
    "max_completion_tokens": "maxTokens",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}


def _when(timestamp: float) -> datetime:
    # A datetime, not ISO text: the Generation model takes it as is instead of parsing it back.
    return datetime.fromtimestamp(timestamp, UTC)


def _parameters(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key in _NOT_PARAMETERS or value is None:
            continue
        if key == "stop":
            out["stopSequences"] = [value] if isinstance(value, str) else value
        else:
            out[_RENAMED.get(key, key)] = value
    return out


def _input(call: Call) -> dict[str, Any]:
    body = call.body
    if call.kind == "chat":
        messages = body.get("messages")
        multimodal = isinstance(messages, list) and any(
            isinstance(m, dict)
            and isinstance(m.get("content"), list)
            and any(isinstance(p, dict) and p.get("type") not in (None, "text") for p in m["content"])
            for m in messages
        )
        return {"type": "multimodal" if multimodal else "text", "content": messages}
    if call.kind == "completion":
        return {"type": "text", "content": body.get("prompt")}
    if "input" in body:
        return {"type": "text", "content": body["input"]}
    return {"type": "text", "content": {k: v for k, v in body.items() if k != "model"}}


def _message_output(message: dict[str, Any]) -> tuple[str, Any]:
    if any(message.get(k) for k in ("tool_calls", "function_call", "audio")):
        return "json", {k: v for k, v in message.items() if v is not None}
    return "text", message.get("content")


def _dimensions(embedding: Any) -> int | None:
    if isinstance(embedding, list):
        return len(embedding)
    if isinstance(embedding, str):  # encoding_format=base64 (the openai client's default): float32s
        try:
            return len(base64.b64decode(embedding)) // 4
        except (binascii.Error, ValueError):
            return None
    return None


def _output(call: Call, answer: dict[str, Any]) -> dict[str, Any]:
    contents: list[tuple[str, Any]] = []
    choices = answer.get("choices")
    if call.kind in ("chat", "completion") and isinstance(choices, list):
        for choice in sorted((c for c in choices if isinstance(c, dict)), key=lambda c: c.get("index", 0)):
            if call.kind == "chat":
                contents.append(_message_output(choice.get("message") or {}))
            else:
                contents.append(("text", choice.get("text")))
    elif call.kind == "embedding":
        data = answer.get("data") or []
        first = data[0].get("embedding") if data and isinstance(data[0], dict) else None
        contents.append(("other", {"embeddings": len(data), "dimensions": _dimensions(first)}))
    else:
        contents.append(("json", answer))
    if not contents:
        return {}
    output: dict[str, Any] = {"type": contents[0][0], "content": contents[0][1]}
    if len(contents) > 1:
        output["alternatives"] = [{"content": c} for _, c in contents[1:]]
    return output


def _usage(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        return None
    prompt = raw.get("prompt_tokens") or raw.get("input_tokens") or 0
    completion = raw.get("completion_tokens") or raw.get("output_tokens") or 0
    usage: dict[str, Any] = {
        "promptTokens": prompt,
        "completionTokens": completion,
        "totalTokens": raw.get("total_tokens") or prompt + completion,
    }
    cached = (raw.get("prompt_tokens_details") or {}).get("cached_tokens")
    if isinstance(cached, int):
        usage["cachedTokens"] = cached
    reasoning = (raw.get("completion_tokens_details") or {}).get("reasoning_tokens")
    if isinstance(reasoning, int):
        usage["reasoningTokens"] = reasoning
    return usage


def _answer(call: Call) -> dict[str, Any] | None:
    if call.answer is not None:
        return call.answer
    if call.events is not None:
        answer, stream_error = assemble(call.kind, call.events)
        if stream_error is not None and call.error is None:
            call.failed(
                str(stream_error.get("type") or "stream_error"), str(stream_error.get("message") or "")
            )
        return answer
    if call.response:
        try:
            value = orjson.loads(call.response)
        except orjson.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None
    return None


def _metadata(call: Call) -> dict[str, Any]:
    context = call.context
    meta = dict(context.metadata)
    if context.user_id and context.run_id is None:
        meta["userId"] = context.user_id
    if context.session_id:
        meta["sessionId"] = context.session_id
    if call.request_id and "requestId" not in meta:
        meta["requestId"] = call.request_id
    return meta


def _template(call: Call) -> dict[str, Any] | None:
    name = call.context.template_name
    if name is None:
        return None
    template: dict[str, Any] = {"name": name}
    if call.kind == "chat" and isinstance(call.body.get("messages"), list):
        template["chat"] = call.body["messages"]
    elif call.kind == "completion" and isinstance(call.body.get("prompt"), str):
        template["text"] = call.body["prompt"]
    return template


def generation_body(call: Call) -> dict[str, Any]:
    """The wire body (camelCase) of the Generation that records ``call``."""
    answer = _answer(call)
    if answer is not None and call.status >= 400:
        # The upstream's error answer: its message and type go to the record's error.
        error = answer.get("error")
        if isinstance(error, dict) and call.error is not None:
            call.error["message"] = str(error.get("message") or call.error["message"])
            call.error["type"] = str(error.get("type") or call.error["type"])
        answer = None
    usage = _usage(answer.get("usage")) if answer is not None else None
    ended = call.ended if call.ended is not None else call.started
    performance: dict[str, Any] = {"latency": round(max(0.0, (ended - call.started) * 1000), 3)}
    if call.stream and call.first is not None:
        performance["timeToFirstToken"] = round(max(0.0, (call.first - call.started) * 1000), 3)
    completion_tokens = usage["completionTokens"] if usage else 0
    decode = ended - (call.first if call.first is not None else call.started)
    if completion_tokens and decode > 0:
        performance["tokensPerSecond"] = round(completion_tokens / decode, 3)
    model: dict[str, Any] = {"id": call.model}
    served = answer.get("model") if answer is not None else None
    if isinstance(served, str) and served:
        model["version"] = served
    if call.target.provider:
        model["provider"] = call.target.provider
    body: dict[str, Any] = {
        "id": call.generation_id,
        "timestamp": _when(call.wall),
        "model": model,
        "input": _input(call),
        "output": _output(call, answer) if answer is not None else {},
        "parameters": _parameters(call.body),
        "metadata": _metadata(call),
        "performance": performance,
        "status": "ok" if call.outcome == "ok" else "error",
        "cacheHit": call.cache_hit,
    }
    if usage is not None:
        if call.cache_hit:
            saved = price(
                call.model,
                call.target.provider,
                usage["promptTokens"],
                usage["completionTokens"],
                usage.get("cachedTokens"),
            )
            usage["cost"] = 0.0
            if saved is not None:
                usage["costSaved"] = saved
                usage["currency"] = "USD"
        body["usage"] = usage
        body["input"]["tokens"] = usage["promptTokens"]
        if body["output"] and call.kind != "embedding":
            body["output"]["tokens"] = usage["completionTokens"]
    if call.error is not None:
        body["error"] = call.error
    template = _template(call)
    if template is not None:
        body["template"] = template
    if call.context.run_id is not None:
        body["runId"] = call.context.run_id
    if call.context.chat_id is not None:
        body["chatId"] = call.context.chat_id
    return body
