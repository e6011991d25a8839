"""THE one mapping of an OpenAI call (request and response, streamed or not) to a Generation.

The SDK and the gateway both record through :func:`generation`: the SDK with the ``openai``
client's response objects and its keyword arguments, the gateway with the parsed JSON it forwarded.
Responses and stream chunks are read field by field, whichever they are: the record takes the few
fields it needs and never dumps the whole response model (for a chat answer, reading them costs a
small fraction of ``model_dump``).

Pure and a leaf: the standard library only, so the SDK imports it without any server dependency.
Nothing it is given is changed (the record may share strings and lists with the request it maps,
so a caller that edits a record must copy what it edits).

What stays with the callers is their own: the SDK's template, run and chat ids from its call
parameters, the gateway's ``cacheHit`` and ``costSaved``, and the form of the timestamp (:func:`iso`
text for the SDK's JSON, a :func:`when` ``datetime`` that the gateway's validation takes as is).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

__all__ = [
    "assemble",
    "exception_error",
    "generation",
    "iso",
    "plain",
    "upstream_error",
    "when",
]

# Request keys that are not model parameters: the call's content, its model, or transport options
# (the openai client's per-call options, the AI-Eye endpoints' stored-key reference).
_NOT_PARAMETERS = frozenset(
    {
        "messages",
        "prompt",
        "input",
        "model",
        "stream_options",
        "extra_headers",
        "extra_query",
        "extra_body",
        "timeout",
        "openaikey_id",
    }
)
_RENAMED = {
    "top_p": "topP",
    "max_tokens": "maxTokens",
    "max_completion_tokens": "maxTokens",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
_EMPTY: Mapping[str, Any] = MappingProxyType({})
# The openai client's "not given" sentinels, known by name: this module imports no openai.
_SENTINELS = frozenset({"NotGiven", "Omit"})


def iso(timestamp: float) -> str:
    """A Unix timestamp as ISO 8601 text in UTC."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


def when(timestamp: float) -> datetime:
    """A Unix timestamp as an aware ``datetime`` in UTC."""
    return datetime.fromtimestamp(timestamp, UTC)


def _fields(value: Any) -> Mapping[str, Any]:
    """The fields of parsed JSON (the object itself) or of a response object of the openai client.

    A response object's fields are its ``__dict__`` (pydantic keeps field values there): one lookup
    per object, then dict reads, as cheap as reading parsed JSON. Anything else has no fields.
    """
    if type(value) is dict:
        return value
    # JSON scalars and arrays have no __dict__; a class's is a mappingproxy: neither has fields.
    fields = getattr(value, "__dict__", None)
    return fields if type(fields) is dict else _EMPTY


def plain(value: Any) -> Any:
    """``value`` as JSON types: models dumped, openai's NotGiven/Omit left out, unknowns as text.

    Returns a dict of strings as it is (no copy): requests are mostly that.
    """
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if kind is dict:
        # One loop, no generators: a request's messages are many small dicts of strings.
        for k, v in value.items():
            if type(v) is not str or type(k) is not str:
                break
        else:
            return value
        return {str(k): plain(v) for k, v in value.items() if type(v).__name__ not in _SENTINELS}
    if kind is list or kind is tuple:
        return [v if type(v) is str else plain(v) for v in value]
    dump = getattr(value, "model_dump", None)
    if dump is not None and not isinstance(value, type):  # a pydantic model (the openai client's types)
        return dump(mode="json", exclude_none=True, warnings=False)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items() if type(v).__name__ not in _SENTINELS}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, str | int | float):
        return value
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return str(value)


# -- the request ---------------------------------------------------------------------------------


def _parameters(request: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in request.items():
        if key in _NOT_PARAMETERS or value is None:
            continue
        if key == "stop":
            out["stopSequences"] = [value] if isinstance(value, str) else value
        else:
            out[_RENAMED.get(key, key)] = value
    extra = request.get("extra_body")
    if isinstance(extra, Mapping):
        for key, value in extra.items():
            out.setdefault(str(key), value)
    return out


def _input(kind: str, request: Mapping[str, Any]) -> dict[str, Any]:
    if kind == "chat":
        messages = request.get("messages")
        multimodal = isinstance(messages, list) and any(
            isinstance(m, dict)
            and isinstance(m.get("content"), list)
            and any(isinstance(p, dict) and p.get("type") not in (None, "text") for p in m["content"])
            for m in messages
        )
        return {"type": "multimodal" if multimodal else "text", "content": messages}
    if kind == "completion":
        return {"type": "text", "content": request.get("prompt")}
    if "input" in request:
        return {"type": "text", "content": request["input"]}
    return {"type": "text", "content": {k: v for k, v in request.items() if k != "model"}}


# -- the response --------------------------------------------------------------------------------


def _message_output(message: Any) -> tuple[str, Any]:
    """(output type, content) of one assistant message: its text, or the whole message when it calls tools."""
    fields = _fields(message)
    if fields.get("tool_calls") or fields.get("function_call") or fields.get("audio"):
        if type(message) is dict:
            return "json", {k: v for k, v in message.items() if v is not None}
        return "json", plain(message)
    return "text", fields.get("content")


def _dimensions(embedding: Any) -> int | None:
    if isinstance(embedding, list):
        return len(embedding)
    if isinstance(embedding, str):  # encoding_format=base64: float32s
        try:
            return len(base64.b64decode(embedding)) // 4
        except (binascii.Error, ValueError):
            return None
    return None


def _index(fields: Mapping[str, Any]) -> int:
    index = fields.get("index")
    return index if type(index) is int else 0


def _output(kind: str, answer: Any) -> dict[str, Any]:
    contents: list[tuple[str, Any]] = []
    if kind in ("chat", "completion"):
        choices = _fields(answer).get("choices")
        if isinstance(choices, list):
            choices = [c if type(c) is dict else _fields(c) for c in choices]
            if len(choices) > 1:
                choices.sort(key=_index)
            for choice in choices:
                if kind == "chat":
                    contents.append(_message_output(choice.get("message")))
                else:
                    contents.append(("text", choice.get("text")))
    elif kind == "embedding":
        data = _fields(answer).get("data")
        data = data if isinstance(data, list) else []
        first = _fields(data[0]).get("embedding") if data else None
        contents.append(("other", {"embeddings": len(data), "dimensions": _dimensions(first)}))
    else:
        contents.append(("json", answer if type(answer) is dict else plain(answer)))
    if not contents:
        return {}
    output: dict[str, Any] = {"type": contents[0][0], "content": contents[0][1]}
    if len(contents) > 1:
        output["alternatives"] = [{"content": c} for _, c in contents[1:]]
    return output


def _usage(raw: Any) -> dict[str, Any] | None:
    fields = raw if type(raw) is dict else _fields(raw)
    if not fields:
        return None
    prompt = fields.get("prompt_tokens") or fields.get("input_tokens")
    prompt = prompt if type(prompt) is int else 0
    completion = fields.get("completion_tokens") or fields.get("output_tokens")
    completion = completion if type(completion) is int else 0
    total = fields.get("total_tokens")
    usage: dict[str, Any] = {
        "promptTokens": prompt,
        "completionTokens": completion,
        "totalTokens": total if type(total) is int and total else prompt + completion,
    }
    cached = _fields(fields.get("prompt_tokens_details")).get("cached_tokens")
    if type(cached) is int:
        usage["cachedTokens"] = cached
    reasoning = _fields(fields.get("completion_tokens_details")).get("reasoning_tokens")
    if type(reasoning) is int:
        usage["reasoningTokens"] = reasoning
    return usage


# -- streams -------------------------------------------------------------------------------------


def _merge_delta(message: dict[str, Any], delta: Mapping[str, Any]) -> None:
    """What a delta adds to its message besides text (see :func:`assemble`)."""
    role = delta.get("role")
    if role:
        message["role"] = role
    refusal = delta.get("refusal")
    if refusal:
        message["refusal"] = (message.get("refusal") or "") + refusal
    tool_calls = delta.get("tool_calls")
    if tool_calls:
        calls = message.setdefault("tool_calls", {})
        for call in map(_fields, tool_calls):
            index = _index(call)
            entry = calls.get(index)
            if entry is None:
                entry = calls[index] = {
                    "id": None,
                    "type": "function",
                    "function": {"name": "", "arguments": ""},
                }
            if call.get("id"):
                entry["id"] = call["id"]
            if call.get("type"):
                entry["type"] = call["type"]
            function = _fields(call.get("function"))
            entry["function"]["name"] += function.get("name") or ""
            entry["function"]["arguments"] += function.get("arguments") or ""
    function_call = delta.get("function_call")
    if function_call:
        merged = message.setdefault("function_call", {"name": "", "arguments": ""})
        function = _fields(function_call)
        merged["name"] += function.get("name") or ""
        merged["arguments"] += function.get("arguments") or ""


def assemble(kind: str, chunks: Iterable[Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """``(answer, error)`` from a stream's chunks (parsed JSON or the client's chunk objects).

    The answer is what a non-streamed request gets (``chat.completion`` or ``text_completion``; its
    usage as the stream gave it), the error the error event the stream carried, if any.
    """
    chat = kind == "chat"
    head: dict[str, Any] = {}
    choices: dict[int, dict[str, Any]] = {}
    usage: Any = None
    error: dict[str, Any] | None = None
    # Per chunk, its choice and its delta: parsed JSON as it is, an object's fields (see _fields)
    # looked up inline, since a stream has many chunks.
    for chunk in chunks:
        if type(chunk) is dict:
            if "error" in chunk:  # an error event (the openai client raises it instead)
                raw = chunk["error"]
                error = dict(raw) if isinstance(raw, dict) else {"message": str(raw)}
                continue
        else:
            chunk = getattr(chunk, "__dict__", _EMPTY)
        if not head:
            for name in ("id", "created", "model", "system_fingerprint"):
                value = chunk.get(name)
                if value:
                    head[name] = value
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or ():
            if type(choice) is not dict:
                choice = getattr(choice, "__dict__", _EMPTY)
            index = choice.get("index")
            if type(index) is not int:
                index = 0
            entry = choices.get(index)
            if entry is None:
                entry = choices[index] = {"index": index, "finish_reason": None, "logprobs": None}
                if chat:
                    entry["message"] = {"role": "assistant", "content": None}
                else:
                    entry["text"] = ""
            if chat:
                delta = choice.get("delta")
                if type(delta) is not dict:
                    delta = getattr(delta, "__dict__", _EMPTY)
                message = entry["message"]
                content = delta.get("content")
                if content:
                    message["content"] = (message["content"] or "") + content
                # Most deltas carry text only: the rest is merged in a call of its own.
                if (
                    delta.get("role")
                    or delta.get("tool_calls")
                    or delta.get("refusal")
                    or delta.get("function_call")
                ):
                    _merge_delta(message, delta)
            else:
                entry["text"] += choice.get("text") or ""
            reason = choice.get("finish_reason")
            if reason:
                entry["finish_reason"] = reason
    if not head and not choices:
        return None, error
    for entry in choices.values():
        message = entry.get("message")
        if message is not None and "tool_calls" in message:
            message["tool_calls"] = [message["tool_calls"][i] for i in sorted(message["tool_calls"])]
    answer: dict[str, Any] = {
        "id": head.get("id", ""),
        "object": "chat.completion" if chat else "text_completion",
        "created": head.get("created", 0),
        "model": head.get("model", ""),
        "choices": [choices[i] for i in sorted(choices)],
    }
    if usage is not None:
        answer["usage"] = usage
    if "system_fingerprint" in head:
        answer["system_fingerprint"] = head["system_fingerprint"]
    return answer, error


# -- errors --------------------------------------------------------------------------------------


def exception_error(exc: BaseException) -> dict[str, Any]:
    """The record's error for an exception the call raised (the openai client's carry a status)."""
    error: dict[str, Any] = {"type": type(exc).__name__, "message": str(getattr(exc, "message", None) or exc)}
    status = getattr(exc, "status_code", None)
    if type(status) is int:
        error["statusCode"] = status
    return error


def upstream_error(error: Mapping[str, Any], answer: Any) -> dict[str, Any]:
    """``error`` with the message and type of the upstream's error answer (OpenAI's ``{"error": {...}}``)."""
    out = dict(error)
    detail = _fields(answer).get("error")
    if isinstance(detail, dict):
        out["message"] = str(detail.get("message") or out.get("message") or "")
        out["type"] = str(detail.get("type") or out.get("type") or "error")
    return out


# -- the record ----------------------------------------------------------------------------------


def generation(
    kind: str,
    request: Mapping[str, Any],
    answer: Any = None,
    *,
    chunks: Iterable[Any] | None = None,
    generation_id: str,
    timestamp: str | datetime,
    started: float,
    ended: float | None,
    first: float | None = None,
    provider: str | None = None,
    request_id: str | None = None,
    error: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The wire body (camelCase) of the Generation recording one OpenAI call.

    ``kind`` is ``chat``, ``completion``, ``embedding`` or another endpoint's; ``request`` the call's
    arguments as JSON types (see :func:`plain`); ``answer`` the response, or ``chunks`` a stream's
    chunks; ``started``/``ended``/``first`` (first chunk) are ``perf_counter`` readings; ``error`` is
    set when the call failed (a stream's error event sets it too); ``metadata`` is the caller's,
    to which the upstream's request id is added.
    """
    if chunks is not None:
        answer, stream_error = assemble(kind, chunks)
        if stream_error is not None and error is None:
            error = {
                "type": str(stream_error.get("type") or "stream_error"),
                "message": str(stream_error.get("message") or ""),
            }
    fields = _fields(answer)
    usage = _usage(fields.get("usage"))
    end = ended if ended is not None else started
    performance: dict[str, Any] = {"latency": round(max(0.0, (end - started) * 1000), 3)}
    if first is not None:
        performance["timeToFirstToken"] = round(max(0.0, (first - started) * 1000), 3)
    completion_tokens = usage["completionTokens"] if usage else 0
    decode = end - (first if first is not None else started)
    if completion_tokens and decode > 0:
        performance["tokensPerSecond"] = round(completion_tokens / decode, 3)
    requested = request.get("model")
    model: dict[str, Any] = {"id": requested if isinstance(requested, str) and requested else "unknown"}
    served = fields.get("model")
    if isinstance(served, str) and served:
        model["version"] = served
    if provider:
        model["provider"] = provider
    meta = dict(metadata) if metadata else {}
    if request_id and "requestId" not in meta:
        meta["requestId"] = request_id
    body: dict[str, Any] = {
        "id": generation_id,
        "timestamp": timestamp,
        "model": model,
        "input": _input(kind, request),
        "output": _output(kind, answer) if answer is not None else {},
        "parameters": _parameters(request),
        "metadata": meta,
        "performance": performance,
        "status": "ok" if error is None else "error",
    }
    if usage is not None:
        body["usage"] = usage
        body["input"]["tokens"] = usage["promptTokens"]
        if body["output"] and kind != "embedding":
            body["output"]["tokens"] = usage["completionTokens"]
    if error is not None:
        body["error"] = dict(error)
    return body
