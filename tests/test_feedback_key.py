"""Feedback keys: made by whoever holds the API key, checked by the server with the key's hash."""

from __future__ import annotations

import uuid

import pytest

from sightline.feedback_key import (
    Signer,
    hash_api_key,
    make_feedback_key,
    parse_feedback_key,
    verify_feedback_key,
)


def test_a_key_names_its_generation_and_verifies_with_its_api_key_only() -> None:
    generation = str(uuid.uuid4())
    key = make_feedback_key("sl_first", generation)
    assert parse_feedback_key(key)[0] == generation
    assert verify_feedback_key(key, hash_api_key("sl_first"))
    assert not verify_feedback_key(key, hash_api_key("sl_second"))


def test_a_signer_makes_the_same_keys() -> None:
    signer = Signer("sl_some_key")
    for _ in range(20):
        generation = uuid.uuid4()
        assert signer.sign(generation.bytes) == make_feedback_key("sl_some_key", str(generation))


@pytest.mark.parametrize("bad", ["", "slfk_", "slfk_!!!", "nope", "slfk_" + "A" * 10])
def test_malformed_keys_raise_value_error(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_feedback_key(bad)
