"""Records as the items that travel: wire body, redaction when asked.

Runs on the exporter thread. The JSON of a whole batch is written in one pass by the sender
(:func:`sightline.sdk._sender.dumps_batch`), so an item here stays a Python value. Redaction fails
closed: a record that cannot be redacted is not sent.
"""

from __future__ import annotations

from typing import Any

from sightline.sdk._config import Destination
from sightline.sdk._wire import generation_body, plain

__all__ = ["encode"]


def encode(dest: Destination, kind: str, payload: Any) -> tuple[str, Any]:
    """``(endpoint, item)``: ``ingest`` items (``{"type", "body"}``) are batched, ``feedback`` alone.

    A ``generation`` payload is a finished call (turned into its wire body here, off the caller's
    thread) or a wire body already made; other kinds are wire bodies.
    """
    if kind == "generation":
        body = payload if isinstance(payload, dict) else generation_body(payload)
    else:
        body = plain(payload)
    if dest.redact_pii:
        from sightline.sdk._redact import redact_record

        body = redact_record(kind, body, dest.pii_region)
    if kind == "feedback_key":
        return "feedback", body
    return "ingest", {"type": kind, "body": body}
