"""Records as the bytes that travel: wire body, redaction when asked, compact JSON.

Runs on the exporter thread. Redaction fails closed: a record that cannot be redacted is not sent.
"""

from __future__ import annotations

import json
from typing import Any

from sightline.sdk._config import Destination
from sightline.sdk._record import Call
from sightline.sdk._wire import generation_body, plain

__all__ = ["encode"]


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def encode(dest: Destination, kind: str, payload: Any) -> tuple[str, bytes]:
    """``(endpoint, bytes)``: ``ingest`` items are batched, ``feedback`` goes to ``/api/feedback``."""
    if kind == "generation":
        assert isinstance(payload, Call)
        body = generation_body(payload)
    else:
        body = plain(payload)
    if dest.redact_pii:
        from sightline.sdk._redact import redact_record

        body = redact_record(kind, body, dest.pii_region)
    if kind == "feedback_key":
        return "feedback", _dumps(body)
    return "ingest", _dumps({"type": kind, "body": body})
