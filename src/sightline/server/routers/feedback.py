"""Feedback: with an API key on one generation, or with a feedback key and no API key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from ...errors import AuthenticationError, InvalidInput, NotFound
from ...feedback_key import parse_feedback_key, verify_feedback_key
from ...schema import Feedback
from ...store.access.projects import ApiKey, find_key_by_reference
from ...store.generations.ingest import AddFeedback
from ...store.generations.queries import get_generation
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


async def _store(request: Request, key: ApiKey, generation_id: str, body: dict[str, Any]) -> JSON:
    fb = _feedback(body, generation_id)

    def exists() -> None:
        with request.app.state.db.read() as conn:
            get_generation(conn, key.project_id, generation_id)

    await run_in_threadpool(exists)
    await request.app.state.db.writer.write(AddFeedback(key.scope, generation_id, fb))
    return JSON({"generationId": generation_id, "feedback": fb.wire()}, status_code=201)


@router.post(
    "/api/generations/{generation_id}/feedback", status_code=201, summary="Add feedback to a generation"
)
async def add(generation_id: str, request: Request, key: ApiKeyDep) -> JSON:
    """Body: ``rating`` (1-5), ``score`` (0-1), ``thumbs`` (up/down), ``comment``, ``categories``,
    ``betterResponse``, ``userId``: at least one judgement."""
    body = await read_json(request)
    body.pop("generationId", None)
    return await _store(request, key, generation_id, body)


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

    def owner() -> ApiKey | None:
        with request.app.state.db.read() as conn:
            for key in find_key_by_reference(conn, reference):
                if verify_feedback_key(feedback_key, key.key_hash):
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
