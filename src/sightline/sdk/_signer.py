"""Feedback keys made on the caller's thread, cheaply.

The same keys as :func:`sightline.feedback_key.make_feedback_key` (a test holds the two equal), but
the API key's hash, its reference and the keyed HMAC state are computed once per client rather
than once per call: signing a call then costs a hash copy and one update.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from sightline.feedback_key import PREFIX, hash_api_key, key_reference

__all__ = ["Signer"]

_MAC_BYTES = 16


class Signer:
    """Makes the feedback keys of one API key."""

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
