"""Turning a finished call into the camelCase Generation body the server ingests.

This runs on the exporter thread, never on the caller's. The record is
:func:`sightline.mapping.generation`, the gateway's too, read from the response object's fields (or
the stream's chunks) without dumping the response model; what is the SDK's own is added here: the
caller's context (``sightline.context`` and ``CallParams``), the template, the run and the chat.
"""

from __future__ import annotations

from typing import Any

from sightline.mapping import exception_error, generation, iso, plain
from sightline.sdk._record import Call
from sightline.sdk._templates import template_name, template_version

__all__ = ["generation_body", "plain"]


def _metadata(call: Call) -> dict[str, Any]:
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
    return meta


def _error(call: Call) -> dict[str, Any] | None:
    if call.error is not None:
        return exception_error(call.error)
    if call.outcome == "incomplete":
        return {
            "type": "incomplete_stream",
            "message": f"the caller closed the stream after {len(call.chunks or ())} chunks, before it ended",
        }
    return None


def _template(call: Call) -> dict[str, Any] | None:
    t = call.template
    if t is None:
        return None
    chat = plain(t.chat) if t.chat is not None else None
    template: dict[str, Any] = {"name": t.name or template_name(chat, t.text)}
    if chat is not None or t.text is not None:  # a name alone has no content to version
        template["version"] = template_version(chat, t.text)
    if chat is not None:
        template["chat"] = chat
    if t.text is not None:
        template["text"] = t.text
    if t.params is not None:
        template["params"] = plain(t.params)
    return template


def _request_id(result: Any) -> str | None:
    # openai keeps it as a pydantic private attribute: getattr reaches it through the model's
    # __getattr__ (~3 µs a record); the private dict is one lookup.
    private = getattr(result, "__pydantic_private__", None)
    value = private.get("_request_id") if type(private) is dict else getattr(result, "_request_id", None)
    return value if isinstance(value, str) else None


def generation_body(call: Call) -> dict[str, Any]:
    """The wire body of the Generation a finished call records."""
    streamed = call.chunks is not None
    body = generation(
        call.kind,
        plain(call.request),
        None if streamed else call.result,
        chunks=call.chunks,
        generation_id=call.id,
        timestamp=iso(call.wall),
        started=call.started,
        ended=call.ended,
        first=call.first,
        provider=call.provider,
        request_id=call.request_id if streamed else _request_id(call.result),
        error=_error(call),
        metadata=_metadata(call),
    )
    template = _template(call)
    if template is not None:
        body["template"] = template
    if call.run_id is not None:
        body["runId"] = call.run_id
    if call.step_index is not None:
        body["stepIndex"] = call.step_index
    chat_id = (call.params.chat_id if call.params else None) or (call.scope.chat_id if call.scope else None)
    if chat_id:
        body["chatId"] = chat_id
    return body
