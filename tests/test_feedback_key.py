"""Feedback keys: signed with a key derived from the server's secret and the API key's hash."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

import pytest

from sightline.feedback_key import (
    MAX_ID_CHARS,
    Signer,
    feedback_secret,
    hash_api_key,
    key_reference,
    make_feedback_key,
    parse_feedback_key,
    signing_key,
    verify_feedback_key,
)

SERVER = feedback_secret("a server secret of at least thirty-two characters")
KEY_HASH = hash_api_key("sl_first")


def test_a_key_names_its_generation_and_verifies_with_its_signing_key_only() -> None:
    generation = str(uuid.uuid4())
    own = signing_key(SERVER, KEY_HASH)
    key = make_feedback_key(own, KEY_HASH, generation)
    assert parse_feedback_key(key) == (generation, key_reference(KEY_HASH))
    assert verify_feedback_key(key, own)
    assert not verify_feedback_key(key, signing_key(SERVER, hash_api_key("sl_second")))
    other_server = feedback_secret("another server's secret, also long enough")
    assert not verify_feedback_key(key, signing_key(other_server, KEY_HASH))


def test_the_stored_key_hash_alone_cannot_forge_a_key() -> None:
    """What the database holds (the API key's hash) is not what signs: keys made from it fail."""
    generation = str(uuid.uuid4())
    forged = make_feedback_key(bytes.fromhex(KEY_HASH), KEY_HASH, generation)  # the old signing scheme
    assert not verify_feedback_key(forged, signing_key(SERVER, KEY_HASH))


@pytest.mark.parametrize(
    "generation_id",
    ["generation-123", "ÿ-ünïcode-✓", "x" * MAX_ID_CHARS, "F47AC10B-58CC-4372-A567-0E02B2C3D479", "42"],
)
def test_string_ids_round_trip(generation_id: str) -> None:
    own = signing_key(SERVER, KEY_HASH)
    key = make_feedback_key(own, KEY_HASH, generation_id)
    assert parse_feedback_key(key)[0] == generation_id
    assert verify_feedback_key(key, own)


def test_a_uuid_id_takes_sixteen_bytes_and_signing_its_bytes_gives_the_same_key() -> None:
    signer = Signer.for_api_key(SERVER, KEY_HASH)
    for _ in range(20):
        generation = uuid.uuid4()
        key = signer.sign(generation.bytes)
        assert key == signer.sign(str(generation))
        assert len(key) < len(make_feedback_key(b"k" * 32, KEY_HASH, "g" * 36))


def test_an_altered_key_fails() -> None:
    own = signing_key(SERVER, KEY_HASH)
    key = make_feedback_key(own, KEY_HASH, "generation-123")
    data = bytearray(base64.urlsafe_b64decode(key[5:] + "=" * (-len(key[5:]) % 4)))
    data[10] ^= 1  # one letter of the id
    altered = "slfk_" + base64.urlsafe_b64encode(bytes(data)).rstrip(b"=").decode()
    assert parse_feedback_key(altered)[0] != "generation-123"
    assert not verify_feedback_key(altered, own)


def test_a_key_of_the_old_layout_is_refused_with_a_clear_message() -> None:
    generation = uuid.uuid4()
    reference = bytes.fromhex(key_reference(KEY_HASH))
    payload = generation.bytes + reference
    mac = hmac.new(bytes.fromhex(KEY_HASH), payload, hashlib.sha256).digest()[:16]
    old = "slfk_" + base64.urlsafe_b64encode(payload + mac).rstrip(b"=").decode()
    with pytest.raises(ValueError, match="no\\s+longer verifies"):
        parse_feedback_key(old)


@pytest.mark.parametrize(
    "bad", ["", "slfk_", "slfk_!!!", "nope", "slfk_" + "A" * 10, "slfk_" + "A" * 5000, "slfk_AQ"]
)
def test_malformed_keys_raise_value_error(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_feedback_key(bad)


@pytest.mark.parametrize("bad", ["", "y" * (MAX_ID_CHARS + 1)])
def test_ids_out_of_bounds_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        make_feedback_key(b"k" * 32, KEY_HASH, bad)
