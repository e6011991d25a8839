"""Feedback keys: signed, opaque tokens that name one generation.

A feedback key lets a browser send its user's judgement of one answer without holding an API key.
It is signed with the **signing key of one API key**: an HMAC of the API key's hash under a key
derived from the server's secret (``SIGHTLINE_SECRET_KEY``)::

    feedback secret = HMAC-SHA256(server secret, "sightline feedback keys")
    signing key     = HMAC-SHA256(feedback secret, SHA-256(API key))

So the database (which stores only the API key's hash) and its backups are not enough to forge a
key: the server's secret is needed too. The gateway signs on the server; the SDK, which holds only
the API key, fetches its signing key from the server (``GET /api/feedback/signing-key``) once, in
the background. Thus:

* a key names exactly one generation of one API key's project and can do nothing else;
* a forged or altered key fails the HMAC check;
* revoking the API key retires its feedback keys too; so does changing the server's secret.

Layout (URL-safe base64 after the ``slfk_`` prefix): 1 byte layout (1: the id is a UUID, in 16
bytes; 2: the id is text, in UTF-8), 8 bytes key reference (the first 8 bytes of the API key's
hash, to find it), the generation id, 16 bytes HMAC-SHA256 (truncated) of all that precedes.
Keys made before this layout (signed with the API key's hash alone) no longer verify.
Standard library only: the SDK imports this.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid

__all__ = [
    "MAX_ID_CHARS",
    "PREFIX",
    "Signer",
    "feedback_secret",
    "hash_api_key",
    "key_reference",
    "make_feedback_key",
    "parse_feedback_key",
    "signing_key",
    "verify_feedback_key",
]

PREFIX = "slfk_"
MAX_ID_CHARS = 200
_MAC_BYTES = 16
_REF_BYTES = 8
_UUID, _TEXT = 1, 2
_OLD_LENGTH = 16 + _REF_BYTES + _MAC_BYTES  # the layout before keys were signed with the server's secret
_PURPOSE = b"sightline feedback keys"


def hash_api_key(api_key: str) -> str:
    """The hex SHA-256 of an API key: the only form the server stores."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def key_reference(key_hash: str) -> str:
    """The short, non-secret reference to an API key that a feedback key carries (hex)."""
    return key_hash[: _REF_BYTES * 2]


def feedback_secret(server_secret: str) -> bytes:
    """The key feedback keys are derived from: the server's secret serves other ends too (sessions,
    provider keys), so it is never used as it is."""
    return hmac.new(server_secret.encode(), _PURPOSE, hashlib.sha256).digest()


def signing_key(feedback_secret: bytes, key_hash: str) -> bytes:
    """The signing key of the API key whose hash is ``key_hash``."""
    return hmac.new(feedback_secret, bytes.fromhex(key_hash), hashlib.sha256).digest()


def _id_bytes(generation_id: str | bytes) -> bytes:
    """The layout byte and the id as the key carries it."""
    if isinstance(generation_id, bytes):
        if len(generation_id) != 16:
            raise ValueError("a generation UUID has 16 bytes")
        return bytes([_UUID]) + generation_id
    if not generation_id or len(generation_id) > MAX_ID_CHARS:
        raise ValueError(f"a generation id has 1 to {MAX_ID_CHARS} characters")
    try:
        as_uuid = uuid.UUID(generation_id)
    except ValueError:
        as_uuid = None
    if as_uuid is not None and str(as_uuid) == generation_id:
        return bytes([_UUID]) + as_uuid.bytes
    return bytes([_TEXT]) + generation_id.encode()


class Signer:
    """Makes the feedback keys of one API key, given its signing key.

    The keyed HMAC state is made once, so signing one generation (on a caller's thread, or per
    gateway request) costs a state copy and one update.
    """

    def __init__(self, signing_key: bytes, key_hash: str) -> None:
        self.reference = key_reference(key_hash)
        self._reference = bytes.fromhex(self.reference)
        self._mac = hmac.new(signing_key, digestmod=hashlib.sha256)

    @classmethod
    def for_api_key(cls, feedback_secret: bytes, key_hash: str) -> Signer:
        """The signer of an API key, on the server (which holds the feedback secret)."""
        return cls(signing_key(feedback_secret, key_hash), key_hash)

    def sign(self, generation_id: str | bytes) -> str:
        """The feedback key of a generation: its id (text), or the 16 bytes of its UUID."""
        id_part = _id_bytes(generation_id)
        payload = id_part[:1] + self._reference + id_part[1:]
        mac = self._mac.copy()
        mac.update(payload)
        return PREFIX + base64.urlsafe_b64encode(payload + mac.digest()[:_MAC_BYTES]).rstrip(b"=").decode()


def make_feedback_key(signing_key: bytes, key_hash: str, generation_id: str) -> str:
    """A feedback key for ``generation_id``, signed with the signing key of the API key ``key_hash``."""
    return Signer(signing_key, key_hash).sign(generation_id)


def _decode(feedback_key: str) -> bytes:
    if not isinstance(feedback_key, str) or not feedback_key.startswith(PREFIX):
        raise ValueError("feedbackKey is not a Sightline feedback key")
    raw = feedback_key[len(PREFIX) :]
    if len(raw) > 2 * (1 + _REF_BYTES + 4 * MAX_ID_CHARS + _MAC_BYTES):
        raise ValueError("feedbackKey is malformed")
    try:
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("feedbackKey is malformed") from None


def parse_feedback_key(feedback_key: str) -> tuple[str, str]:
    """``(generation_id, key_reference)`` of a well-formed key; ``ValueError`` otherwise.

    This does not check the signature: look the API key up by its reference, then call
    :func:`verify_feedback_key` with its signing key.
    """
    data = _decode(feedback_key)
    head = 1 + _REF_BYTES
    id_bytes = data[head:-_MAC_BYTES]
    layout = data[0] if data else 0
    if layout == _UUID and len(id_bytes) == 16:
        generation_id = str(uuid.UUID(bytes=id_bytes))
    elif layout == _TEXT and len(data) > head + _MAC_BYTES:
        try:
            generation_id = id_bytes.decode()
        except UnicodeDecodeError:
            raise ValueError("feedbackKey is malformed") from None
        if len(generation_id) > MAX_ID_CHARS:
            raise ValueError("feedbackKey is malformed")
    elif len(data) == _OLD_LENGTH:
        raise ValueError(
            "feedbackKey was made before feedback keys were signed with the server's secret and no "
            "longer verifies: take the key from a new response"
        )
    else:
        raise ValueError("feedbackKey is malformed")
    return generation_id, data[1:head].hex()


def verify_feedback_key(feedback_key: str, signing_key: bytes) -> bool:
    """Whether ``feedback_key`` (well formed: :func:`parse_feedback_key`) was signed with ``signing_key``."""
    data = _decode(feedback_key)
    payload, mac = data[:-_MAC_BYTES], data[-_MAC_BYTES:]
    expected = hmac.new(signing_key, payload, hashlib.sha256).digest()[:_MAC_BYTES]
    return hmac.compare_digest(mac, expected)
