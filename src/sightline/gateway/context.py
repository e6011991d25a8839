"""What a caller tells the gateway about a call through ``X-Sightline-*`` request headers.

=============================  ==================================================================
``X-Sightline-User-Id``        the end user (a run's user when a run id is given too)
``X-Sightline-Session-Id``     a session
``X-Sightline-Chat-Id``        a conversation: its calls are shown together, in order
``X-Sightline-Run-Id``         the run (chain of calls) this call is a step of
``X-Sightline-Template-Name``  records the prompt under this template name
``X-Sightline-Metadata``       a JSON object of metadata; custom keys take typed values
``X-Sightline-Cache``          ``use`` | ``skip`` | ``refresh`` (answer from / bypass / renew the cache)
``X-Sightline-Provider``       the id or name of a stored provider to forward to
=============================  ==================================================================

Every value is checked before anything is forwarded; a bad one is an ``InvalidInput`` naming the
header. :func:`split_headers` sorts a request's headers into these, the caller's credentials, and
the ones sent on to the provider.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import InvalidInput
from ..schema import normalize_metadata

__all__ = ["CACHE_CONTROLS", "Context", "RequestHeaders", "parse_context", "split_headers"]

CACHE_CONTROLS = ("use", "skip", "refresh")
PREFIX = "x-sightline-"
_MAX_ID = 200
_IDS = {
    "x-sightline-user-id": "user_id",
    "x-sightline-session-id": "session_id",
    "x-sightline-chat-id": "chat_id",
    "x-sightline-run-id": "run_id",
    "x-sightline-template-name": "template_name",
}


@dataclass(frozen=True, slots=True)
class Context:
    user_id: str | None = None
    session_id: str | None = None
    chat_id: str | None = None
    run_id: str | None = None
    template_name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    cache: str | None = None
    provider: str | None = None
    # The template to record ({"name", "chat"|"text", "params"}): a managed prompt's, set by the server
    # when it renders one (never from a header), so the call carries the prompt's version, not a hash
    # of the rendered messages.
    template: dict[str, Any] | None = None
    # The call's place in its run (a pipeline's step), set by the server, never from a header.
    step_index: int | None = None


EMPTY = Context()


def _metadata(raw: str) -> dict[str, Any]:
    # Header values arrive as latin-1 text; a client that sent UTF-8 JSON gets it back intact.
    try:
        value = orjson.loads(raw.encode("latin-1"))
    except (orjson.JSONDecodeError, UnicodeEncodeError):
        raise InvalidInput("X-Sightline-Metadata: not valid JSON", field="X-Sightline-Metadata") from None
    try:
        return normalize_metadata(value)
    except ValueError as exc:
        raise InvalidInput(f"X-Sightline-Metadata: {exc}", field="X-Sightline-Metadata") from None


def parse_context(headers: Mapping[str, str]) -> Context:
    """The context given by ``x-sightline-*`` headers (``headers`` holds only those, names lowercase)."""
    if not headers:
        return EMPTY
    values: dict[str, Any] = {}
    for name, value in headers.items():
        attr = _IDS.get(name)
        if attr is not None:
            value = value.strip()
            if not value or len(value) > _MAX_ID:
                raise InvalidInput(f"{_title(name)}: expected 1-{_MAX_ID} characters", field=_title(name))
            values[attr] = value
        elif name == "x-sightline-metadata":
            values["metadata"] = _metadata(value)
        elif name == "x-sightline-cache":
            mode = value.strip().lower()
            if mode not in CACHE_CONTROLS:
                raise InvalidInput(
                    f"X-Sightline-Cache: expected one of {', '.join(CACHE_CONTROLS)}, got {value!r}",
                    field="X-Sightline-Cache",
                )
            values["cache"] = mode
        elif name == "x-sightline-provider":
            values["provider"] = value.strip()
    metadata = values.get("metadata")
    if metadata:
        # userId / sessionId given inside the metadata count as their headers (the headers win).
        for key, attr in (("userId", "user_id"), ("sessionId", "session_id")):
            if key in metadata:
                values.setdefault(attr, metadata.pop(key))
    return Context(**values)


def _title(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


# Never sent on to the provider: hop-by-hop, recomputed, or the caller's own credentials.
_DROP_REQUEST = frozenset(
    {
        b"host",
        b"authorization",
        b"api-key",
        b"content-length",
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-authorization",
        b"proxy-connection",
        b"accept-encoding",
        b"content-encoding",
        b"cookie",
        b"expect",
    }
)
_PREFIX = PREFIX.encode()


@dataclass(slots=True)
class RequestHeaders:
    """A request's headers, sorted by what the gateway does with them."""

    authorization: str | None = None
    sightline: dict[str, str] = field(default_factory=dict)
    forward: dict[str, str] = field(default_factory=dict)
    content_length: int | None = None
    content_type: str = ""
    content_encoding: str = ""


def split_headers(raw: Iterable[tuple[bytes, bytes]]) -> RequestHeaders:
    """Sort raw (lowercase-named) request headers into credentials, ``X-Sightline-*``, and the rest."""
    out = RequestHeaders()
    for name, value in raw:
        if name.startswith(_PREFIX):
            out.sightline[name.decode("latin-1")] = value.decode("latin-1")
        elif name in _DROP_REQUEST:
            if name == b"authorization":
                out.authorization = value.decode("latin-1")
            elif name == b"content-length" and value.isdigit():
                out.content_length = int(value)
            elif name == b"content-encoding":
                out.content_encoding = value.decode("latin-1").strip().lower()
        else:
            text = value.decode("latin-1")
            if name == b"content-type":
                out.content_type = text.partition(";")[0].strip().lower()
            out.forward[name.decode("latin-1")] = text
    return out
