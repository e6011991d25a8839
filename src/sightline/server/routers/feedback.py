"""Feedback: with an API key on one generation, or with a feedback key and no API key.

Feedback keys are signed with a key derived from the server's secret (see ``sightline.feedback_key``);
``GET /api/feedback/signing-key`` gives an API key's holder (the SDK) its own signing key.

The feedback a generation shows is the one received last, whatever timestamp its client gave it: a
new feedback replaces it whole, as the Generations document's ``updateOne(..., {$set: {feedback}})``
does (``PATCH /api/generations/{id}`` takes that update as it is written).
"""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from ...errors import AuthenticationError, InvalidInput, NotFound
from ...feedback_key import (
    feedback_secret,
    key_reference,
    parse_feedback_key,
    signing_key,
    verify_feedback_key,
)
from ...schema import Feedback
from ...store.access.projects import ApiKey, find_key_by_reference
from ...store.generations.ingest import AddFeedback
from ...store.generations.reads.queries import get_generation
from ..auth import ApiKeyDep
from ..body import read_json
from ..errors import validation_message
from ..responses import JSON

router = APIRouter(tags=["feedback"])


def _feedback(body: dict[str, Any], generation_id: str) -> Feedback:
    try:
        return Feedback.model_validate({**body, "generationId": generation_id})
    except ValidationError as exc:
        message, field = validation_message(exc)
        raise InvalidInput(message, field=field) from None


async def _store(
    request: Request, key: ApiKey, generation_id: str, body: dict[str, Any], status_code: int = 201
) -> JSON:
    fb = _feedback(body, generation_id)
    generation_id = fb.generation_id or generation_id  # as stored (a UUID in lower case)

    def exists() -> None:
        with request.app.state.db.read() as conn:
            get_generation(conn, key.project_id, generation_id)

    await run_in_threadpool(exists)
    await request.app.state.db.writer.write(AddFeedback(key.scope, generation_id, fb))
    return JSON({"generationId": generation_id, "feedback": fb.wire()}, status_code=status_code)


# ``:path``: a generation's id is the client's text, and may hold a "/" (sent as %2F).
@router.post(
    "/api/generations/{generation_id:path}/feedback", status_code=201, summary="Add feedback to a generation"
)
async def add(generation_id: str, request: Request, key: ApiKeyDep) -> JSON:
    """Body: ``rating`` (1-5), ``score`` (0-1), ``thumbs`` (up/down), ``comment``, ``categories``,
    ``betterResponse``, ``userId``: at least one judgement."""
    body = await read_json(request)
    body.pop("generationId", None)
    return await _store(request, key, generation_id, body)


def _set_feedback(body: dict[str, Any]) -> dict[str, Any]:
    """The feedback an update sets: ``{"$set": {"feedback": {...}}}`` or ``{"feedback": {...}}``.

    Only the feedback of a generation can be changed: anything else is a 400 naming it."""
    fields, prefix = body, ""
    if "$set" in body:
        for name in body:
            if name != "$set":
                raise InvalidInput(f"{name}: only $set of feedback is accepted", field=name)
        fields, prefix = body["$set"], "$set."
        if not isinstance(fields, dict):
            raise InvalidInput('$set: expected an object, {"feedback": {...}}', field="$set")
    for name in fields:
        if name != "feedback":
            raise InvalidInput(
                f"{prefix}{name}: only feedback can be set on a generation", field=f"{prefix}{name}"
            )
    feedback = fields.get("feedback")
    if not isinstance(feedback, dict):
        raise InvalidInput(
            f'{prefix}feedback: expected an object, as {{"$set": {{"feedback": {{"rating": 5}}}}}}',
            field=f"{prefix}feedback",
        )
    feedback.pop("generationId", None)  # the path names the generation
    return feedback


@router.patch("/api/generations/{generation_id:path}", summary="Set the feedback of a generation")
async def update(generation_id: str, request: Request, key: ApiKeyDep) -> JSON:
    """Body: ``{"$set": {"feedback": {...}}}`` (the Generations document's ``updateOne``), or
    ``{"feedback": {...}}``. The feedback replaces the one shown; every feedback is kept."""
    body = await read_json(request)
    return await _store(request, key, generation_id, _set_feedback(body), status_code=200)


@router.post("/api/feedback", status_code=201, summary="Add feedback with a feedback key (no API key)")
async def with_key(request: Request) -> JSON:
    """Body: ``{"feedbackKey": "...", ...Feedback}``. The feedback key, from a response of the SDK or the
    gateway, names one generation and allows only this."""
    body = await read_json(request)
    feedback_key = body.pop("feedbackKey", None)
    if not isinstance(feedback_key, str):
        raise InvalidInput("feedbackKey: required", field="feedbackKey")
    try:
        generation_id, reference = parse_feedback_key(feedback_key)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="feedbackKey") from None

    secret = feedback_secret(request.app.state.settings.secret_key)

    def owner() -> ApiKey | None:
        with request.app.state.db.read() as conn:
            for key in find_key_by_reference(conn, reference):
                if verify_feedback_key(feedback_key, signing_key(secret, key.key_hash)):
                    return key
        return None

    key = await run_in_threadpool(owner)
    if key is None:
        raise AuthenticationError("feedbackKey is not valid (forged, altered, or its API key was revoked)")
    body.pop("generationId", None)
    try:
        return await _store(request, key, generation_id, body)
    except NotFound:
        # Signed for a generation the SDK has not delivered yet: keep it; it applies on arrival.
        fb = _feedback(body, generation_id)
        await request.app.state.db.writer.write(AddFeedback(key.scope, generation_id, fb))
        return JSON({"generationId": generation_id, "feedback": fb.wire(), "pending": True}, status_code=202)


@router.get("/api/feedback/signing-key", summary="The signing key of this API key's feedback keys")
async def own_signing_key(request: Request, key: ApiKeyDep) -> JSON:
    """``{"keyReference", "signingKey"}`` (URL-safe base64): what the SDK signs its feedback keys with.

    It is as secret as the API key it belongs to: it signs feedback keys of this key's project only.
    """
    own = signing_key(feedback_secret(request.app.state.settings.secret_key), key.key_hash)
    return JSON(
        {
            "keyReference": key_reference(key.key_hash),
            "signingKey": base64.urlsafe_b64encode(own).decode(),
        },
        headers={"Cache-Control": "no-store"},
    )
