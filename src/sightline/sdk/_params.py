"""Per-call parameters (``sightline=CallParams(...)`` or a dict) and the error for bad ones."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sightline.errors import InvalidInput
from sightline.schema import normalize_metadata

__all__ = ["CallParams", "Id", "InvalidParams", "check_metadata", "coerce_call_params", "coerce_id"]

Id = str | uuid.UUID
"""An id as the SDK takes it: a string, or a UUID object (recorded as its canonical text)."""


class InvalidParams(InvalidInput, ValueError):
    """A Sightline argument of a call is malformed; the model call was not made.

    It is both a :class:`sightline.errors.InvalidInput` and a :class:`ValueError`.
    """


def check_metadata(raw: Any, *, where: str = "metadata") -> dict[str, Any]:
    """Metadata normalised as the server will store it, or :class:`InvalidParams` naming the key."""
    try:
        return normalize_metadata(raw)
    except ValueError as exc:
        raise InvalidParams(f"{where}: {exc}", field="metadata") from None


def coerce_id(name: str, value: object) -> str | None:
    """An id as recorded (a UUID object as its text), or :class:`InvalidParams` naming ``name``."""
    if value is None:
        return None
    if isinstance(value, str) and 0 < len(value) <= 200:
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    raise InvalidParams(f"{name} must be a non-empty string of at most 200 characters, or a UUID", field=name)


@dataclass(frozen=True, slots=True)
class CallParams:
    """What Sightline records about one call, beyond what openai sees.

    ``event_id`` becomes the generation id (a UUID; one is made when absent). ``chain_id`` groups
    related calls into one run. Ids are strings or ``uuid.UUID`` objects; a UUID is kept as its
    text. ``template_chat``/``template_text`` with ``template_params`` record the template a call
    was rendered from; when ``messages``/``prompt`` is not given, the template is rendered and sent.
    """

    event_id: Id | None = None
    chat_id: Id | None = None
    chain_id: Id | None = None
    user_id: Id | None = None
    session_id: Id | None = None
    metadata: Mapping[str, Any] | None = None
    prompt_template_name: str | None = None
    template_chat: list[Any] | None = None
    template_text: str | None = None
    template_params: Mapping[str, Any] | None = None
    tags: list[str] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.event_id is not None:
            try:
                canonical = str(uuid.UUID(str(self.event_id)))
            except ValueError:
                raise InvalidParams(
                    f"event_id must be a UUID, got {self.event_id!r}", field="event_id"
                ) from None
            object.__setattr__(self, "event_id", canonical)
        for name in ("chat_id", "chain_id", "user_id", "session_id", "prompt_template_name"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, coerce_id(name, value))
        if self.metadata is not None:
            object.__setattr__(self, "metadata", check_metadata(self.metadata))
        if self.tags is not None and (
            not isinstance(self.tags, list) or not all(isinstance(t, str) for t in self.tags)
        ):
            raise InvalidParams("tags must be a list of strings", field="tags")
        if self.template_chat is not None and not isinstance(self.template_chat, list):
            raise InvalidParams("template_chat must be a list of messages", field="template_chat")
        if self.template_text is not None and not isinstance(self.template_text, str):
            raise InvalidParams("template_text must be a string", field="template_text")
        if self.template_params is not None and not isinstance(self.template_params, Mapping):
            raise InvalidParams("template_params must be a mapping", field="template_params")


_ALIASES = {
    "eventId": "event_id",
    "chatId": "chat_id",
    "chainId": "chain_id",
    "userId": "user_id",
    "sessionId": "session_id",
    "promptTemplateName": "prompt_template_name",
    "templateChat": "template_chat",
    "templateText": "template_text",
    "templateParams": "template_params",
}
_NAMES = frozenset(CallParams.__dataclass_fields__)


def coerce_call_params(value: CallParams | Mapping[str, Any] | None) -> CallParams | None:
    """``CallParams`` from the ``sightline=`` argument (an instance, a dict in snake or camel case)."""
    if value is None or isinstance(value, CallParams):
        return value
    if not isinstance(value, Mapping):
        raise InvalidParams(
            f"sightline= takes CallParams or a dict, got {type(value).__name__}", field="sightline"
        )
    kwargs: dict[str, Any] = {}
    for key, item in value.items():
        name = _ALIASES.get(key, key)
        if name not in _NAMES:
            raise InvalidParams(
                f"sightline={{...}}: unknown key {key!r} (expected one of {', '.join(sorted(_NAMES))})",
                field=str(key),
            )
        kwargs[name] = item
    return CallParams(**kwargs)
