"""Turning a finished call into the camelCase Generation body the server ingests.

This runs on the exporter thread, never on the caller's: everything here may take its time (walking
responses, merging stream chunks, hashing templates).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from openai import NotGiven, Omit
from pydantic import BaseModel

from sightline.sdk._templates import template_name, template_version

if TYPE_CHECKING:
    from sightline.sdk._record import Call

__all__ = ["FEEDBACK_KEY", "generation_body", "iso", "plain"]

FEEDBACK_KEY = "sightline_feedback_key"
_OMITTED = (NotGiven, Omit)
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
    }
)
_RENAMED = {
    "top_p": "topP",
    "max_tokens": "maxTokens",
    "max_completion_tokens": "maxTokens",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}


def iso(timestamp: float) -> str:
    """A Unix timestamp as ISO 8601 in UTC."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


def plain(value: Any) -> Any:
    """``value`` as JSON types: models dumped, openai's NotGiven/Omit left out, unknowns as text."""
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if kind is dict:
        # Messages are mostly dicts of strings: those need no copy (the request is already a snapshot).
        if all(type(v) is str for v in value.values()) and all(type(k) is str for k in value):
            return value
        return {str(k): plain(v) for k, v in value.items() if not isinstance(v, _OMITTED)}
    if kind is list or kind is tuple:
        return [plain(v) for v in value]
    if isinstance(value, BaseModel):
        dumped = value.model_dump(mode="json", exclude_none=True, warnings=False)
        dumped.pop(FEEDBACK_KEY, None)
        return dumped
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items() if not isinstance(v, _OMITTED)}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, str | int | float):
        return value
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return str(value)


def _parameters(request: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in request.items():
        if key in _NOT_PARAMETERS or value is None or isinstance(value, NotGiven | Omit):
            continue
        if key == "stop":
            out["stopSequences"] = [value] if isinstance(value, str) else plain(value)
        else:
            out[_RENAMED.get(key, key)] = plain(value)
    extra = request.get("extra_body")
    if isinstance(extra, Mapping):
        for key, value in extra.items():
            out.setdefault(str(key), plain(value))
    return out


def _usage(usage: Any) -> dict[str, Any] | None:
    if usage is None:
        return None
    prompt = getattr(usage, "prompt_tokens", None) or 0
    completion = getattr(usage, "completion_tokens", None) or 0
    out: dict[str, Any] = {
        "promptTokens": prompt,
        "completionTokens": completion,
        "totalTokens": getattr(usage, "total_tokens", None) or prompt + completion,
    }
    cached = getattr(getattr(usage, "prompt_tokens_details", None), "cached_tokens", None)
    if cached is not None:
        out["cachedTokens"] = cached
    reasoning = getattr(getattr(usage, "completion_tokens_details", None), "reasoning_tokens", None)
    if reasoning is not None:
        out["reasoningTokens"] = reasoning
    return out


def _message_output(message: Mapping[str, Any]) -> tuple[str, Any]:
    """(output type, content) of one assistant message: its text, or the whole message when it calls tools."""
    if any(message.get(k) for k in ("tool_calls", "function_call", "audio")):
        return "json", {k: v for k, v in message.items() if v is not None}
    return "text", message.get("content")


def _chat_choices(result: Any) -> list[dict[str, Any]]:
    return [plain(choice.message) for choice in sorted(result.choices, key=lambda c: c.index)]


def _merge_chat_chunks(chunks: list[Any]) -> list[dict[str, Any]]:
    """The assistant messages a chat stream spelled out, one per choice."""
    merged: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for choice in getattr(chunk, "choices", None) or ():
            message = merged.setdefault(choice.index, {"role": "assistant", "content": None})
            delta = choice.delta
            if delta is None:
                continue
            if delta.content:
                message["content"] = (message["content"] or "") + delta.content
            if getattr(delta, "refusal", None):
                message["refusal"] = message.get("refusal", "") + delta.refusal
            for call in getattr(delta, "tool_calls", None) or ():
                calls = message.setdefault("tool_calls", {})
                entry = calls.setdefault(
                    call.index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
                )
                if call.id:
                    entry["id"] = call.id
                if call.function is not None:
                    entry["function"]["name"] += call.function.name or ""
                    entry["function"]["arguments"] += call.function.arguments or ""
    out = []
    for index in sorted(merged):
        message = merged[index]
        if "tool_calls" in message:
            message["tool_calls"] = [message["tool_calls"][i] for i in sorted(message["tool_calls"])]
        out.append(message)
    return out


def _merge_text_chunks(chunks: list[Any]) -> list[str]:
    merged: dict[int, str] = {}
    for chunk in chunks:
        for choice in getattr(chunk, "choices", None) or ():
            merged[choice.index] = merged.get(choice.index, "") + (choice.text or "")
    return [merged[i] for i in sorted(merged)]


def _output(call: Call) -> tuple[dict[str, Any], Any, str | None, str | None]:
    """(output, usage object, served model, request id) of a call, from its response or its chunks."""
    result, chunks = call.result, call.chunks
    usage: Any = None
    model: str | None = None
    request_id: str | None = None
    contents: list[tuple[str, Any]] = []
    if chunks is not None:
        for chunk in chunks:
            usage = getattr(chunk, "usage", None) or usage
            model = model or getattr(chunk, "model", None)
        if call.kind == "chat":
            contents = [_message_output(m) for m in _merge_chat_chunks(chunks)]
        else:
            contents = [("text", t) for t in _merge_text_chunks(chunks)]
        request_id = call.request_id
    elif result is not None:
        usage = getattr(result, "usage", None)
        model = getattr(result, "model", None)
        request_id = getattr(result, "_request_id", None)
        if call.kind == "chat":
            contents = [_message_output(m) for m in _chat_choices(result)]
        elif call.kind == "completion":
            contents = [("text", c.text) for c in sorted(result.choices, key=lambda c: c.index)]
        elif call.kind == "embedding":
            data = getattr(result, "data", None) or []
            dims = len(data[0].embedding) if data and isinstance(data[0].embedding, list) else None
            contents = [("other", {"embeddings": len(data), "dimensions": dims})]
    output: dict[str, Any] = {}
    if contents:
        output = {"type": contents[0][0], "content": contents[0][1]}
        if len(contents) > 1:
            output["alternatives"] = [{"content": c} for _, c in contents[1:]]
    return output, usage, model, request_id


def _input(call: Call) -> dict[str, Any]:
    request = call.request
    if call.kind == "chat":
        messages = plain(request.get("messages"))
        multimodal = any(
            isinstance(m, dict)
            and isinstance(m.get("content"), list)
            and any(isinstance(p, dict) and p.get("type") not in (None, "text") for p in m["content"])
            for m in messages or []
        )
        return {"type": "multimodal" if multimodal else "text", "content": messages}
    return {"type": "text", "content": plain(request.get("prompt" if call.kind == "completion" else "input"))}


def _metadata(call: Call, request_id: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    scope, params = call.scope, call.params
    if scope is not None:
        meta.update(scope.metadata)
    if params is not None and params.metadata:
        meta.update(params.metadata)
    if call.run_id is None or not call.run_owned:
        user = (params.user_id if params else None) or (scope.user_id if scope else None)
        if user:
            meta["userId"] = user
    session = (params.session_id if params else None) or (scope.session_id if scope else None)
    if session:
        meta["sessionId"] = session
    if params is not None and params.tags:
        meta["tags"] = list(params.tags)
    if request_id and "requestId" not in meta:
        meta["requestId"] = request_id
    return meta


def _error(call: Call) -> dict[str, Any] | None:
    exc = call.error
    if exc is not None:
        error: dict[str, Any] = {
            "type": type(exc).__name__,
            "message": str(getattr(exc, "message", None) or exc),
        }
        status = getattr(exc, "status_code", None)
        if isinstance(status, int):
            error["statusCode"] = status
        return error
    if call.outcome == "incomplete":
        return {
            "type": "incomplete_stream",
            "message": f"the caller closed the stream after {len(call.chunks or ())} chunks, before it ended",
        }
    return None


def generation_body(call: Call) -> dict[str, Any]:
    """The wire body of the Generation a finished call records."""
    output, usage_obj, served_model, request_id = _output(call)
    usage = _usage(usage_obj)
    ended = call.ended if call.ended is not None else call.started
    latency = max(0.0, (ended - call.started) * 1000)
    performance: dict[str, Any] = {"latency": round(latency, 3)}
    if call.first is not None:
        performance["timeToFirstToken"] = round(max(0.0, (call.first - call.started) * 1000), 3)
    completion_tokens = usage["completionTokens"] if usage else 0
    decode = ended - (call.first if call.first is not None else call.started)
    if completion_tokens and decode > 0:
        performance["tokensPerSecond"] = round(completion_tokens / decode, 3)
    model: dict[str, Any] = {"id": str(call.request.get("model"))}
    if served_model:
        model["version"] = served_model
    if call.provider:
        model["provider"] = call.provider
    body: dict[str, Any] = {
        "id": call.id,
        "timestamp": iso(call.wall),
        "model": model,
        "input": _input(call),
        "output": output,
        "parameters": _parameters(call.request),
        "metadata": _metadata(call, request_id),
        "performance": performance,
        "status": "ok" if call.outcome == "ok" else "error",
    }
    if usage is not None:
        body["usage"] = usage
        body["input"]["tokens"] = usage["promptTokens"]
        if output and call.kind != "embedding":
            output["tokens"] = usage["completionTokens"]
    error = _error(call)
    if error is not None:
        body["error"] = error
    if call.template is not None:
        t = call.template
        chat = plain(t.chat) if t.chat is not None else None
        template: dict[str, Any] = {
            "name": t.name or template_name(chat, t.text),
            "version": template_version(chat, t.text),
        }
        if chat is not None:
            template["chat"] = chat
        if t.text is not None:
            template["text"] = t.text
        if t.params is not None:
            template["params"] = plain(t.params)
        body["template"] = template
    if call.run_id is not None:
        body["runId"] = call.run_id
    if call.step_index is not None:
        body["stepIndex"] = call.step_index
    chat_id = (call.params.chat_id if call.params else None) or (call.scope.chat_id if call.scope else None)
    if chat_id:
        body["chatId"] = chat_id
    return body
