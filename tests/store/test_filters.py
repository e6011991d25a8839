"""The list filter: built from query parameters, written back to the same parameters."""

from __future__ import annotations

import pytest

from sightline.errors import InvalidInput
from sightline.store.generations.queries import GenerationFilter

PARAMS = {
    "model.id": "gpt-4o",
    "output.type": "json",
    "userId": "ann",
    "sessionId": "s1",
    "runId": "r1",
    "chatId": "c1",
    "template.name": "emoji",
    "status": "error",
    "environment": "prod",
    "feedback.thumbs": "up",
    "cacheHit": "true",
    "feedback": "false",
    "feedback.rating": "4",
    "feedback.minRating": "2",
    "from": "2026-11-01T00:00:00Z",
    "to": "2026-11-02T00:00:00Z",
    "metadata.plan": "pro",
}


def test_a_filter_round_trips_through_its_parameters() -> None:
    f, limit, cursor = GenerationFilter.from_params(PARAMS.items())
    assert f.as_params() == PARAMS and (limit, cursor) == (50, None)
    again, _, _ = GenerationFilter.from_params(f.as_params().items())
    assert again == f


def test_aliases_are_written_back_canonically() -> None:
    f, _, _ = GenerationFilter.from_params([("model", "m"), ("metadata.userId", "u"), ("template", "t")])
    assert f.as_params() == {"model.id": "m", "userId": "u", "template.name": "t"}


def test_unknown_parameters_are_refused() -> None:
    with pytest.raises(InvalidInput, match="colour"):
        GenerationFilter.from_params([("colour", "red")])
