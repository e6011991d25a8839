"""libretto-openai's events, feedback and chain results, as its client posts them, in Sightline's wire models.

libretto-openai 1.1.x (pointed here with ``LIBRETTO_API_PREFIX=http://HOST:PORT/compat/libretto``) posts
one event per model call to ``/event``::

    {"apiName", "params", "prompt": {}, "promptEventId", "apiKey" | "projectKey", "feedbackKey",
     "modelParameters": {"modelProvider", "model", "modelType": "chat"|"completion", ...create() arguments},
     "promptTemplateChat" | "promptTemplateText", "response", "responseTime" (ms), "chatId"?,
     "chainId"? (older clients: "parentEventId"), "tools"?, "toolCalls"?, "rawResponse"? (the ChatCompletion)}

:func:`event` turns it into a :class:`~sightline.schema.Generation` through
:func:`sightline.mapping.generation` (the one mapping of an OpenAI call): its id is ``promptEventId``,
its template ``apiName`` with the template and its parameters, the input the template rendered with
them, the output ``rawResponse`` (or ``response`` and ``toolCalls`` when there is none), usage from
``rawResponse.usage`` (so it is priced), latency from ``responseTime``, the chat id, the chain as its
run. The feedback key is kept in metadata
(``librettoFeedbackKey``) so feedback sent with it finds the generation, even when it came first.

:func:`feedback` reads ``/feedback`` (``{"feedback_key", "rating": 0..1 | null, "better_response"}``)
and :func:`chain_result` ``/v1/updateChain`` (``{"id", "result"}``). A malformed body raises
:class:`~sightline.errors.InvalidInput` naming the field. Pure: leaves only.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from sightline.errors import InvalidInput
from sightline.mapping import generation
from sightline.schema import Feedback, Generation, Run
from sightline.templating import TemplateError, render_chat, render_text

__all__ = ["FEEDBACK_KEY", "LibrettoEvent", "api_key_of", "chain_result", "event", "feedback"]

FEEDBACK_KEY = "librettoFeedbackKey"  # the metadata key an event's feedback key is kept under
_MAX_ID = 200
_KINDS = {"chat": "chat", "completion": "completion"}
_NOT_PARAMETERS = ("modelProvider", "modelType")


@dataclass(frozen=True, slots=True)
class LibrettoEvent:
    generation: Generation
    api_name: str | None
    feedback_key: str | None


def api_key_of(body: Any) -> str:
    """The Sightline API key an event carries (``apiKey``, or the legacy ``projectKey``)."""
    if not isinstance(body, Mapping):
        raise InvalidInput("expected a JSON object", field="body")
    key = body.get("apiKey") or body.get("projectKey")
    if not isinstance(key, str) or not key:
        raise InvalidInput("apiKey: required (your Sightline API key)", field="apiKey")
    return key


def _id(body: Mapping[str, Any], field: str, *, required: bool = False) -> str | None:
    value = body.get(field)
    if value is None or value == "":
        if required:
            raise InvalidInput(f"{field}: required", field=field)
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise InvalidInput(f"{field}: expected text", field=field)
    text = str(value)
    if len(text) > _MAX_ID or "\x00" in text:
        raise InvalidInput(f"{field}: at most {_MAX_ID} characters, without NUL", field=field)
    return text


def _object(body: Mapping[str, Any], field: str) -> dict[str, Any]:
    value = body.get(field)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{field}: expected an object", field=field)
    return dict(value)


def _field_of(error: ValidationError) -> str:
    errors = error.errors()
    return ".".join(str(part) for part in errors[0]["loc"]) if errors else "body"


def event(body: Any, *, received: float | None = None) -> LibrettoEvent:
    """The Generation of one libretto event (see the module's docstring)."""
    if not isinstance(body, Mapping):
        raise InvalidInput("expected a JSON object", field="body")
    api_name = _id(body, "apiName")
    event_id = _id(body, "promptEventId") or str(uuid.uuid4())
    feedback_key = _id(body, "feedbackKey")
    chat_id = _id(body, "chatId")
    chain_id = _id(body, "chainId") or _id(body, "parentEventId")
    params = _object(body, "params")
    model_parameters = _object(body, "modelParameters")
    kind = _KINDS.get(str(model_parameters.get("modelType") or "chat"))
    if kind is None:
        raise InvalidInput(
            "modelParameters.modelType: expected chat or completion", field="modelParameters.modelType"
        )
    provider = model_parameters.get("modelProvider")
    request = {k: v for k, v in model_parameters.items() if k not in _NOT_PARAMETERS}
    if not isinstance(request.get("model"), str) or not request["model"]:
        raise InvalidInput(
            "modelParameters.model: required (the model called)", field="modelParameters.model"
        )
    if body.get("tools") is not None:
        request["tools"] = body["tools"]
    template: dict[str, Any] | None = None
    chat, text = body.get("promptTemplateChat"), body.get("promptTemplateText")
    if chat is not None:
        if not isinstance(chat, list):
            raise InvalidInput("promptTemplateChat: expected a list of messages", field="promptTemplateChat")
        template = {"chat": chat}
        try:
            request["messages"] = render_chat(chat, params)
        except TemplateError:
            request["messages"] = chat  # recorded as sent: the template is kept beside it
    elif text is not None:
        if not isinstance(text, str):
            raise InvalidInput("promptTemplateText: expected text", field="promptTemplateText")
        template = {"text": text}
        try:
            request["prompt"] = render_text(text, params)
        except TemplateError:
            request["prompt"] = text
    raw = body.get("rawResponse")
    response = body.get("response")
    if response is not None and not isinstance(response, str):
        raise InvalidInput("response: expected text", field="response")
    answer: Any
    if isinstance(raw, Mapping):
        answer = raw
    elif kind == "chat":
        message: dict[str, Any] = {"role": "assistant", "content": response}
        if isinstance(body.get("toolCalls"), list) and body["toolCalls"]:
            message["tool_calls"] = body["toolCalls"]
        answer = {
            "choices": [{"index": 0, "message": message, "finish_reason": None}],
            "model": request["model"],
        }
    else:
        answer = {"choices": [{"index": 0, "text": response}], "model": request["model"]}
    elapsed = body.get("responseTime")
    if elapsed is not None and (
        isinstance(elapsed, bool) or not isinstance(elapsed, int | float) or not 0 <= elapsed < 1e10
    ):
        raise InvalidInput("responseTime: expected milliseconds (a number)", field="responseTime")
    now = received if received is not None else time.time()
    seconds = (elapsed or 0) / 1000
    wire = generation(
        kind,
        request,
        answer,
        generation_id=event_id,
        timestamp=datetime.fromtimestamp(now - seconds, UTC),
        started=0.0,
        ended=seconds,
        provider=provider if isinstance(provider, str) and provider else None,
    )
    if template is not None or api_name:
        wire["template"] = {"name": api_name, **(template or {}), "params": params}
        if api_name is None:
            del wire["template"]["name"]
    if chat_id:
        wire["chatId"] = chat_id
    if chain_id:
        wire["runId"] = chain_id
    if feedback_key:
        wire["metadata"][FEEDBACK_KEY] = feedback_key
    try:
        gen = Generation.model_validate(wire)
    except ValidationError as error:
        field = _field_of(error)
        raise InvalidInput(f"{field}: {error.errors()[0].get('msg', 'invalid')}", field=field) from None
    return LibrettoEvent(gen, api_name, feedback_key)


def feedback(body: Any) -> tuple[str, Feedback]:
    """The feedback key and the Feedback of a ``/feedback`` body (rating 0..1, a better response)."""
    if not isinstance(body, Mapping):
        raise InvalidInput("expected a JSON object", field="body")
    key = _id(body, "feedback_key", required=True) or _id(body, "feedbackKey", required=True)
    assert key is not None
    rating, better = body.get("rating"), body.get("better_response")
    if rating is not None and (
        isinstance(rating, bool) or not isinstance(rating, int | float) or not 0 <= rating <= 1
    ):
        raise InvalidInput("rating: expected a number from 0 to 1, or null", field="rating")
    if better is not None and not isinstance(better, str):
        raise InvalidInput("better_response: expected text or null", field="better_response")
    if rating is None and better is None:
        raise InvalidInput("rating or better_response: give at least one", field="rating")
    fields: dict[str, Any] = {}
    if rating is not None:
        fields["score"] = float(rating)
    if better is not None:
        fields["betterResponse"] = better
    try:
        return key, Feedback.model_validate(fields)
    except ValidationError as error:
        field = _field_of(error)
        raise InvalidInput(f"{field}: {error.errors()[0].get('msg', 'invalid')}", field=field) from None


def chain_result(body: Any) -> Run:
    """The run update of an ``/v1/updateChain`` body: the chain's id and its result."""
    if not isinstance(body, Mapping):
        raise InvalidInput("expected a JSON object", field="body")
    chain_id = _id(body, "id", required=True)
    result = body.get("result")
    if result is not None and not isinstance(result, str):
        raise InvalidInput("result: expected text", field="result")
    fields: dict[str, Any] = {"id": chain_id, "status": "ok", "endedAt": datetime.now(UTC)}
    if result is not None:
        fields["output"] = result
    return Run.model_validate(fields)
