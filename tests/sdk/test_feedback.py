"""client.send_feedback: from a response's feedback key to the generation."""

from __future__ import annotations

import uuid

import pytest

import sightline
from sightline.feedback_key import hash_api_key, make_feedback_key
from sightline.schema import Feedback
from tests.sdk.conftest import USER, Capture


def test_feedback_by_key_reaches_the_generation(client: sightline.Client, capture: Capture) -> None:
    response = client.chat.completions.create(model="gpt-4o-mini", messages=[USER])
    client.send_feedback(
        feedback_key=response.model_extra["sightline_feedback_key"],  # type: ignore[index]
        rating=0.2,
        better_response="⚽",
        thumbs="down",
        comment="too long",
    )
    generation = capture.one()
    (feedback,) = capture.of("feedback")
    assert feedback["generationId"] == generation["id"]
    assert (feedback["score"], feedback["betterResponse"], feedback["thumbs"], feedback["comment"]) == (
        0.2,
        "⚽",
        "down",
        "too long",
    )
    Feedback.model_validate(feedback)


def test_feedback_by_generation_id(client: sightline.Client, capture: Capture) -> None:
    generation_id = str(uuid.uuid4())
    client.send_feedback(generation_id=generation_id, thumbs="up")
    sightline.flush(5)
    assert capture.of("feedback")[0]["generationId"] == generation_id


def test_a_key_signed_by_another_project_goes_to_the_public_endpoint(
    client: sightline.Client, capture: Capture
) -> None:
    key = make_feedback_key(b"another project's signing key", hash_api_key("sl_other"), str(uuid.uuid4()))
    client.send_feedback(key, rating=1)
    sightline.flush(5)
    assert capture.of("feedback") == []
    (sent,) = capture.feedback
    assert sent["feedbackKey"] == key and sent["score"] == 1
    request = next(r for r in capture.requests if r.url.path == "/api/feedback")
    assert "authorization" not in request.headers


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"feedback_key": "nope", "rating": 0.5}, "not a Sightline feedback key"),
        ({"generation_id": str(uuid.uuid4()), "rating": 4}, "rating must be a number from 0 to 1"),
        ({"generation_id": str(uuid.uuid4())}, "at least one of"),
        ({"rating": 0.5}, "exactly one of"),
        ({"generation_id": str(uuid.uuid4()), "thumbs": "sideways"}, "thumbs"),
    ],
)
def test_bad_feedback_is_a_value_error(
    client: sightline.Client, capture: Capture, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        client.send_feedback(**kwargs)  # type: ignore[arg-type]
