"""The AI-Eye endpoints: the gateway answering plain text, and a look into its cache.

* ``POST /api/openai/{endpoint}/`` (e.g. ``/api/openai/v1/chat/completions/``): the body is the
  OpenAI request, plus ``openaikey_id`` to pick a stored provider. Answers
  ``{"response": "<text>", "cache_hit": true|false}``. These endpoints use the cache unless the
  project or an ``X-Sightline-Cache`` header says otherwise.
* ``POST /api/cache/{endpoint}/``: the cached answers for those parameters,
  ``[{"response": ..., "cache_hit": true}]`` (empty when none), without calling the upstream.

Errors are in OpenAI's shape (``{"error": {"message", "type", "param", "code"}}``); an upstream's
error comes back with the upstream's status and body.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.background import BackgroundTask
from starlette.responses import Response

from ...errors import InvalidInput, SightlineError
from ...gateway import (
    Answer,
    Gateway,
    answer_text,
    cache_key,
    kind_of,
    normalize_endpoint,
    openai_error,
    parse_context,
    split_headers,
)
from ..auth import ApiKeyDep, CallerDep
from ..body import read_json
from ..responses import JSON

__all__ = ["router"]


def _render(request: Request, exc: SightlineError) -> Response:
    return Response(openai_error(exc), status_code=exc.status_code, media_type="application/json")


def _openai_errors(request: Request) -> None:
    request.state.error_renderer = _render


router = APIRouter(tags=["gateway"], dependencies=[Depends(_openai_errors)])


def _selector(body: dict[str, Any]) -> str | None:
    chosen = body.pop("openaikey_id", None)
    if chosen is None or chosen == "":
        return None
    if isinstance(chosen, bool) or not isinstance(chosen, int | str):
        raise InvalidInput("openaikey_id: expected a provider id", field="openaikey_id")
    return str(chosen)


@router.post("/api/openai/{endpoint:path}", summary="Call the model through the gateway; answer its text")
async def openai_call(endpoint: str, request: Request, caller: CallerDep) -> Response:
    """Body: the OpenAI request for ``endpoint`` plus ``openaikey_id`` (optional) →
    ``{"response": text, "cache_hit": bool}``."""
    gateway: Gateway = request.app.state.gateway
    headers = split_headers(request.headers.raw)
    context = parse_context(headers.sightline)
    body = await read_json(request)
    selector = _selector(body)
    if selector is not None:
        context = dataclasses.replace(context, provider=selector)
    body.pop("stream", None)
    body.pop("stream_options", None)
    if not isinstance(body.get("model"), str):
        raise InvalidInput("model: required (the model to call)", field="model")
    answer = await gateway.model_call(
        caller, normalize_endpoint(endpoint), body, context, forward=headers.forward, default_cache="use"
    )
    assert answer.body is not None  # never streamed: "stream" was taken out
    sent = {k.decode(): v.decode() for k, v in answer.sightline}
    finished = BackgroundTask(_finish, answer)
    if answer.status >= 400:  # Sightline's error or the upstream's, as it was
        return Response(
            answer.body,
            status_code=answer.status,
            media_type="application/json",
            headers=sent,
            background=finished,
        )
    try:
        parsed = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        parsed = answer.body.decode(errors="replace")
    assert answer.call is not None
    return JSON(
        {"response": answer_text(answer.call.kind, parsed), "cache_hit": answer.call.cache_hit},
        headers=sent,
        background=finished,
    )


@router.post("/api/cache/{endpoint:path}", summary="The cached answers for these parameters")
async def cached_answers(endpoint: str, request: Request, key: ApiKeyDep) -> JSON:
    """Body: the OpenAI request → ``[{"response": text, "cache_hit": true}]`` (``[]`` when none)."""
    gateway: Gateway = request.app.state.gateway
    body = await read_json(request)
    _selector(body)
    endpoint = endpoint.strip("/")
    found = await gateway.cache.get(key.project_id, cache_key(key.project_id, endpoint, body))
    if found is None:
        return JSON([])
    return JSON([{"response": answer_text(kind_of(endpoint), orjson.loads(found)), "cache_hit": True}])


async def _finish(answer: Answer) -> None:
    # A coroutine, so Starlette runs it on the event loop after the answer went out (not in a thread).
    answer.finish()
