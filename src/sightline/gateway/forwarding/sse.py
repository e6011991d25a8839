"""Server-sent event streams: passing them through, reading them back, replaying a cached answer.

:class:`StreamRelay` forwards whole events as soon as they arrive and keeps each event's data for
the record; it drops the usage-only chunk the gateway asked for on the caller's behalf.
:func:`assemble` turns the kept events into the answer a non-streamed request would have had (for
the cache; the merging is :func:`sightline.mapping.assemble`, the record's and the SDK's too), and
:func:`replay` turns such an answer back into a valid stream.
"""

from __future__ import annotations

from typing import Any

import orjson

from ... import mapping

__all__ = ["StreamRelay", "assemble", "chunks", "replay"]

_DONE = b"[DONE]"


def _event_data(event: bytes) -> bytes | None:
    """The data of one event (its ``data:`` lines joined), or ``None`` for a comment or bare field."""
    if event.startswith(b"data: ") and b"\n" not in event:
        return event[6:]
    lines = [line[5:].removeprefix(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


def _is_usage_only(data: bytes) -> bool:
    if b'"usage"' not in data or b'"choices"' not in data:
        return False
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return isinstance(value, dict) and value.get("choices") == [] and bool(value.get("usage"))


class StreamRelay:
    """Passes an SSE stream through event by event and keeps each event's data."""

    __slots__ = ("_rest", "events", "forwarded", "hide_usage")

    def __init__(self, hide_usage: bool) -> None:
        self.hide_usage = hide_usage
        self.events: list[bytes] = []
        self.forwarded = 0
        self._rest = b""

    def feed(self, chunk: bytes) -> bytes:
        """The bytes to send on for ``chunk`` of the upstream's body (whole events only; may be empty)."""
        if self._rest:
            chunk = self._rest + chunk
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n")
        end = chunk.rfind(b"\n\n")
        if end < 0:
            self._rest = chunk
            return b""
        complete, self._rest = chunk[: end + 2], chunk[end + 2 :]
        kept: list[bytes] | None = None
        events = complete.split(b"\n\n")
        events.pop()  # what follows the last blank line: nothing
        for i, event in enumerate(events):
            data = _event_data(event)
            if data is None:
                continue
            if self.hide_usage and _is_usage_only(data):
                if kept is None:
                    kept = events[:i]
                self.events.append(data)
                continue
            if kept is not None:
                kept.append(event)
            self.events.append(data)
        if kept is not None:
            complete = b"".join(e + b"\n\n" for e in kept)
        if complete:
            self.forwarded += 1
        return complete

    def flush(self) -> bytes:
        """What is left when the upstream ends without closing its last event."""
        rest, self._rest = self._rest, b""
        if rest.strip():
            data = _event_data(rest.strip())
            if data is not None:
                self.events.append(data)
            return rest + b"\n\n"
        return b""


def chunks(events: list[bytes]) -> list[dict[str, Any]]:
    """The JSON objects of a stream's events (``[DONE]`` and what is not a JSON object left out)."""
    out: list[dict[str, Any]] = []
    for data in events:
        if data == _DONE:
            continue
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if isinstance(chunk, dict):
            out.append(chunk)
    return out


def assemble(kind: str, events: list[bytes]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """``(answer, error)`` from a stream's events: the answer as a non-streamed request gets it
    (``chat.completion`` or ``text_completion``), and the error event the stream carried, if any.
    The merging is :func:`sightline.mapping.assemble`, the SDK's too."""
    return mapping.assemble(kind, chunks(events))


def _event(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def replay(kind: str, answer: dict[str, Any], include_usage: bool) -> bytes:
    """A cached (non-streamed) answer as the SSE stream a streamed request expects."""
    chat = kind == "chat"
    base: dict[str, Any] = {
        "id": answer.get("id", ""),
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": answer.get("created", 0),
        "model": answer.get("model", ""),
    }
    if answer.get("system_fingerprint"):
        base["system_fingerprint"] = answer["system_fingerprint"]
    if include_usage:
        base["usage"] = None
    out: list[bytes] = []
    for choice in answer.get("choices") or ():
        index = choice.get("index", 0)
        if chat:
            message = choice.get("message") or {}
            delta: dict[str, Any] = {
                "role": message.get("role", "assistant"),
                "content": message.get("content"),
            }
            for field in ("refusal", "function_call"):
                if message.get(field):
                    delta[field] = message[field]
            if message.get("tool_calls"):
                delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
            first: dict[str, Any] = {"index": index, "delta": delta, "finish_reason": None, "logprobs": None}
            last: dict[str, Any] = {"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")}
        else:
            first = {"index": index, "text": choice.get("text", ""), "finish_reason": None, "logprobs": None}
            last = {
                "index": index,
                "text": "",
                "finish_reason": choice.get("finish_reason"),
                "logprobs": None,
            }
        out.append(_event({**base, "choices": [first]}))
        out.append(_event({**base, "choices": [last]}))
    if include_usage and answer.get("usage"):
        out.append(_event({**base, "choices": [], "usage": answer["usage"]}))
    out.append(b"data: [DONE]\n\n")
    return b"".join(out)
