"""Prompt templates kept apart from their parameters.

Two notations are understood:

* ``{name}`` placeholders (``{{``/``}}`` for literal braces), in :class:`TemplateChat` messages and
  :class:`TemplateText` prompts. A message with the role ``chat_history`` and the content
  ``{prev_messages}`` expands to the list of messages given as that parameter.
* mustache ``{{ name }}`` (also ``{{{ name }}}``, ``{{& name}}``, dotted names and ``{{! comments }}``) in
  messages that carry ``contentTemplate`` + ``contentInputs`` instead of ``content``. Values are not
  HTML-escaped: a prompt is not a web page.

A missing parameter is an :class:`InvalidParams` error naming it; the call is not made.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sightline import templating
from sightline.sdk._params import InvalidParams
from sightline.templating import CHAT_HISTORY_ROLE, template_name, template_version

__all__ = [
    "CHAT_HISTORY_ROLE",
    "TemplateChat",
    "TemplateInfo",
    "TemplateText",
    "has_content_templates",
    "render_chat",
    "render_content_templates",
    "render_mustache",
    "render_text",
    "template_name",
    "template_version",
]

# Roles a template may be written with that providers refuse, and the role sent instead: the libretto
# document writes the model's turns as "ai". The template itself is recorded as written.
_SENT_ROLES = {"ai": "assistant"}
_MUSTACHE = re.compile(r"\{\{\{\s*([^{}\s]+)\s*\}\}\}|\{\{\s*([&!#^/>]?)\s*([^{}]*?)\s*\}\}")


@dataclass(frozen=True, slots=True)
class TemplateInfo:
    """The template a call was made from: recorded as the generation's ``template``."""

    name: str | None
    chat: list[Any] | None = None
    text: str | None = None
    params: Mapping[str, Any] | None = None


class TemplateChat(list[Any]):
    """Chat messages with ``{placeholders}``, kept apart from their parameters.

    ``messages=TemplateChat([{"role": "user", "content": "An emoji for {sport}"}], {"sport": "soccer"})``
    sends the rendered messages and records the template and the parameters separately.
    """

    def __init__(self, messages: Iterable[Any], params: Mapping[str, Any] | None = None) -> None:
        super().__init__(messages)
        self.params: dict[str, Any] = dict(params or {})

    def render(self) -> list[Any]:
        """The messages as they are sent."""
        return render_chat(self, self.params)

    def info(self) -> TemplateInfo:
        """The template recorded with the call (a managed prompt's messages say their prompt's name)."""
        return TemplateInfo(None, chat=list(self), params=self.params)


class TemplateText(str):
    """A prompt with ``{placeholders}``, kept apart from its parameters (for ``completions.create``)."""

    params: dict[str, Any]

    def __new__(cls, template: str, params: Mapping[str, Any] | None = None) -> TemplateText:
        self = super().__new__(cls, template)
        self.params = dict(params or {})
        return self

    def render(self) -> str:
        """The prompt as it is sent."""
        return render_text(str(self), self.params)

    def info(self) -> TemplateInfo:
        """The template recorded with the call (a managed prompt's text says its prompt's name)."""
        return TemplateInfo(None, text=str(self), params=self.params)


def render_text(text: str, params: Mapping[str, Any]) -> str:
    """``text`` with each ``{name}`` replaced by ``params[name]`` (see :mod:`sightline.templating`)."""
    try:
        return templating.render_text(text, params)
    except templating.TemplateError as exc:
        raise InvalidParams(exc.message, field=exc.field) from None


def render_chat(messages: Iterable[Any], params: Mapping[str, Any]) -> list[Any]:
    """Template messages rendered with ``params``; ``chat_history`` messages expand in place.

    A message written with the role ``ai`` is sent as ``assistant``.
    """
    try:
        rendered = templating.render_chat(messages, params)
    except templating.TemplateError as exc:
        raise InvalidParams(exc.message, field=exc.field) from None
    return [
        {**m, "role": _SENT_ROLES[m["role"]]} if isinstance(m, dict) and m.get("role") in _SENT_ROLES else m
        for m in rendered
    ]


def _lookup(inputs: Mapping[str, Any], name: str) -> Any:
    value: Any = inputs
    for part in name.split(".") if name != "." else ["."]:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            raise InvalidParams(f"template input {{{{ {name} }}}} is not given", field=name)
    return value


def render_mustache(template: str, inputs: Mapping[str, Any]) -> str:
    """A mustache template (variables, dotted names, comments) rendered with ``inputs``."""

    def one(match: re.Match[str]) -> str:
        triple, sigil, name = match.group(1), match.group(2), match.group(3)
        if triple is not None:
            value = _lookup(inputs, triple)
        elif sigil == "!":
            return ""
        elif sigil in ("", "&"):
            value = _lookup(inputs, name)
        else:
            raise InvalidParams(
                f"mustache {{{{{sigil}{name}}}}}: sections and partials are not supported; pass plain values",
                field=name,
            )
        return (
            value
            if isinstance(value, str)
            else json.dumps(value)
            if isinstance(value, dict | list)
            else str(value)
        )

    return _MUSTACHE.sub(one, template)


def has_content_templates(messages: list[Any]) -> bool:
    """Whether any message carries ``contentTemplate`` (and so must be rendered before sending)."""
    return any(isinstance(m, dict) and "contentTemplate" in m for m in messages)


def render_content_templates(messages: list[Any]) -> tuple[list[Any], list[Any], dict[str, Any]]:
    """``(messages to send, template messages, merged inputs)`` for messages with ``contentTemplate``."""
    sent: list[Any] = []
    template: list[Any] = []
    params: dict[str, Any] = {}
    for message in messages:
        if not isinstance(message, dict) or "contentTemplate" not in message:
            sent.append(message)
            template.append(message)
            continue
        source = message["contentTemplate"]
        inputs = message.get("contentInputs") or {}
        if not isinstance(source, str) or not isinstance(inputs, Mapping):
            raise InvalidParams(
                "contentTemplate must be a string and contentInputs a dict", field="contentTemplate"
            )
        rest = {k: v for k, v in message.items() if k not in ("contentTemplate", "contentInputs")}
        sent.append({**rest, "content": render_mustache(source, inputs)})
        template.append({**rest, "content": source})
        params.update(inputs)
    return sent, template, params
