"""Feedback keys: signed, opaque tokens that name one generation.

A feedback key lets a browser send its user's judgement of one answer without holding an API key.
Whoever holds the API key (the SDK, the gateway) makes the key; the server, which stores only the
SHA-256 of each API key, checks it. The signature is an HMAC keyed by that hash, so:

* a key names exactly one generation of one API key's project and can do nothing else;
* a forged or altered key fails the HMAC check;
* revoking the API key retires its feedback keys too.

Layout (URL-safe base64 after the ``slfk_`` prefix): 16 bytes generation UUID, 8 bytes key
reference (the first 8 bytes of the API key's hash, to find it), 16 bytes HMAC-SHA256 (truncated).
Standard library only: the SDK imports this.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid

__all__ = [
    "PREFIX",
    "hash_api_key",
    "key_reference",
    "make_feedback_key",
    "parse_feedback_key",
    "verify_feedback_key",
]

PREFIX = "slfk_"
_MAC_BYTES = 16
_REF_BYTES = 8


def hash_api_key(api_key: str) -> str:
    """The hex SHA-256 of an API key: the only form the server stores."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def key_reference(key_hash: str) -> str:
    """The short, non-secret reference to an API key that a feedback key carries (hex)."""
    return key_hash[: _REF_BYTES * 2]


def _mac(key_hash: str, payload: bytes) -> bytes:
    return hmac.new(bytes.fromhex(key_hash), payload, hashlib.sha256).digest()[:_MAC_BYTES]


class Signer:
    """Makes the feedback keys of one API key.

    The key's hash, its reference and the keyed HMAC state are computed once, so signing one
    generation (on a caller's thread, or per gateway request) costs a state copy and one update.
    """

    def __init__(self, api_key: str) -> None:
        key_hash = hash_api_key(api_key)
        self._reference = bytes.fromhex(key_reference(key_hash))
        self._mac = hmac.new(bytes.fromhex(key_hash), digestmod=hashlib.sha256)

    def sign(self, generation_uuid: bytes) -> str:
        """The feedback key of the generation whose UUID has these 16 bytes."""
        payload = generation_uuid + self._reference
        mac = self._mac.copy()
        mac.update(payload)
        return PREFIX + base64.urlsafe_b64encode(payload + mac.digest()[:_MAC_BYTES]).rstrip(b"=").decode()


def make_feedback_key(api_key: str, generation_id: str) -> str:
    """A feedback key for ``generation_id``, signed for the project of ``api_key``."""
    return Signer(api_key).sign(uuid.UUID(generation_id).bytes)


def parse_feedback_key(feedback_key: str) -> tuple[str, str]:
    """``(generation_id, key_reference)`` of a well-formed key; ``ValueError`` otherwise.

    This does not check the signature: look the API key up by its reference, then call
    :func:`verify_feedback_key`.
    """
    if not isinstance(feedback_key, str) or not feedback_key.startswith(PREFIX):
        raise ValueError("feedbackKey is not a Sightline feedback key")
    raw = feedback_key[len(PREFIX) :]
    try:
        data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("feedbackKey is malformed") from None
    if len(data) != 16 + _REF_BYTES + _MAC_BYTES:
        raise ValueError("feedbackKey is malformed")
    return str(uuid.UUID(bytes=data[:16])), data[16 : 16 + _REF_BYTES].hex()


def verify_feedback_key(feedback_key: str, key_hash: str) -> bool:
    """Whether ``feedback_key`` was signed with the API key whose hash is ``key_hash``."""
    raw = feedback_key[len(PREFIX) :]
    data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    payload, mac = data[: 16 + _REF_BYTES], data[16 + _REF_BYTES :]
    return hmac.compare_digest(mac, _mac(key_hash, payload))
