"""Feedback on a generation, named by its feedback key or its id, sent in the background."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ValidationError

from sightline.feedback_key import parse_feedback_key
from sightline.schema import Feedback
from sightline.sdk import _worker
from sightline.sdk._guard import logger
from sightline.sdk._params import InvalidParams
from sightline.sdk._record import Recorder

__all__ = ["send_feedback"]


def send_feedback(
    recorder: Recorder,
    *,
    feedback_key: str | None = None,
    generation_id: str | None = None,
    rating: float | None = None,
    thumbs: Literal["up", "down"] | None = None,
    comment: str | None = None,
    better_response: str | None = None,
    categories: list[str] | None = None,
    user_id: str | None = None,
) -> None:
    """Validate feedback now (``ValueError`` when malformed) and queue it for the server."""
    if (feedback_key is None) == (generation_id is None):
        raise InvalidParams("give exactly one of feedback_key and generation_id", field="feedback_key")
    if rating is not None and (
        isinstance(rating, bool) or not isinstance(rating, int | float) or not 0 <= rating <= 1
    ):
        raise InvalidParams(f"rating must be a number from 0 to 1, got {rating!r}", field="rating")
    if feedback_key is not None:
        try:
            generation_id, _ = parse_feedback_key(feedback_key)
        except ValueError as exc:
            raise InvalidParams(str(exc), field="feedback_key") from None
    try:
        feedback = Feedback(
            generation_id=generation_id,
            score=rating,
            thumbs=thumbs,
            comment=comment,
            better_response=better_response,
            categories=categories,
            user_id=user_id,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'feedback'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidParams(f"invalid feedback: {problems}", field="feedback") from None
    destination = recorder.destination
    if destination is None:
        logger.warning("sightline: no API key, so the feedback is not sent")
        return
    body: dict[str, Any] = feedback.wire()
    # A key naming a generation of our own API key's project goes by id with the API key (which may
    # give feedback on any of the project's generations); others only the server can check.
    ours = feedback_key is None or recorder.signer.owns(feedback_key)
    if ours:
        _worker.submit(destination, "feedback", body)
    else:
        # Signed by another project's key: only the server can check it.
        body.pop("generationId", None)
        _worker.submit(destination, "feedback_key", {"feedbackKey": feedback_key, **body})
