"""Turning a finished :class:`~.call.Call` into the Generation it records.

Runs after the caller has its answer (see :mod:`.recorder`): parsing the answer, merging stream
chunks and pricing happen there, never while the caller waits. The record itself is
:func:`sightline.mapping.generation`, the SDK's too; what is the gateway's own is added here: the
caller's context from its ``X-Sightline-*`` headers, ``cacheHit`` and, on a hit, the cost the cache
saved. Nothing of the call is changed.
"""

from __future__ import annotations

from typing import Any

import orjson

from ... import mapping
from ...store.generations.pricing import price
from ..call import Call
from ..forwarding.sse import chunks

__all__ = ["generation_body"]


def _answer(call: Call) -> tuple[Any, list[dict[str, Any]] | None]:
    """``(answer, stream chunks)``: the parsed answer, or the chunks a streamed answer came in."""
    if call.answer is not None:
        return call.answer, None
    if call.events is not None:
        return None, chunks(call.events)
    if call.response:
        try:
            value = orjson.loads(call.response)
        except orjson.JSONDecodeError:
            return None, None
        return (value if isinstance(value, dict) else None), None
    return None, None


def _metadata(call: Call) -> dict[str, Any]:
    context = call.context
    meta = dict(context.metadata)
    if context.user_id and context.run_id is None:
        meta["userId"] = context.user_id
    if context.session_id:
        meta["sessionId"] = context.session_id
    return meta


def _template(call: Call) -> dict[str, Any] | None:
    if call.context.template is not None:
        return dict(call.context.template)
    name = call.context.template_name
    if name is None:
        return None
    # A name alone names the prompt: the messages sent are rendered content, not a template, and
    # versions come from templates only (X-Sightline-Template, the SDK's, managed prompts).
    return {"name": name}


def generation_body(call: Call) -> dict[str, Any]:
    """The wire body (camelCase) of the Generation that records ``call``."""
    answer, streamed = _answer(call)
    error = call.error
    if call.status >= 400:
        # The upstream's error answer is no output: its message and type go to the record's error.
        if error is not None and answer is not None:
            error = mapping.upstream_error(error, answer)
        answer, streamed = None, None
    body = mapping.generation(
        call.kind,
        call.body,
        answer,
        chunks=streamed,
        generation_id=call.generation_id,
        # A datetime, not ISO text: the Generation model takes it as is instead of parsing it back.
        timestamp=mapping.when(call.wall),
        started=call.started,
        ended=call.ended,
        first=call.first if call.stream else None,
        provider=call.target.provider,
        request_id=call.request_id,
        error=error,
        metadata=_metadata(call),
    )
    body["cacheHit"] = call.cache_hit
    usage = body.get("usage")
    if usage is not None and call.cache_hit:
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
    template = _template(call)
    if template is not None:
        body["template"] = template
    if call.context.run_id is not None:
        body["runId"] = call.context.run_id
    if call.context.step_index is not None:
        body["stepIndex"] = call.context.step_index
    if call.context.chat_id is not None:
        body["chatId"] = call.context.chat_id
    return body
