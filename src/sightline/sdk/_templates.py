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

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sightline.sdk._params import InvalidParams

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

CHAT_HISTORY_ROLE = "chat_history"
_BRACES = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
_MUSTACHE = re.compile(r"\{\{\{\s*([^{}\s]+)\s*\}\}\}|\{\{\s*([&!#^/>]?)\s*([^{}]*?)\s*\}\}")
_WORD = re.compile(r"[A-Za-z0-9]+")


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


def render_text(text: str, params: Mapping[str, Any]) -> str:
    """``text`` with each ``{name}`` replaced by ``params[name]``."""

    def one(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        name = match.group(1)
        if name not in params:
            raise InvalidParams(f"template parameter {{{name}}} is not given", field=name)
        value = params[name]
        return value if isinstance(value, str) else str(value)

    return _BRACES.sub(one, text)


def _render_content(content: Any, params: Mapping[str, Any]) -> Any:
    if isinstance(content, str):
        return render_text(content, params)
    if isinstance(content, list):
        return [
            {**part, "text": render_text(part["text"], params)}
            if isinstance(part, dict) and isinstance(part.get("text"), str)
            else part
            for part in content
        ]
    return content


def render_chat(messages: Iterable[Any], params: Mapping[str, Any]) -> list[Any]:
    """Template messages rendered with ``params``; ``chat_history`` messages expand in place."""
    out: list[Any] = []
    for message in messages:
        if not isinstance(message, Mapping):
            raise InvalidParams(
                "a template message must be a dict with 'role' and 'content'", field="messages"
            )
        if message.get("role") == CHAT_HISTORY_ROLE:
            content = message.get("content")
            match = _BRACES.fullmatch(content) if isinstance(content, str) else None
            name = match.group(1) if match else None
            if name is None:
                raise InvalidParams(
                    "a chat_history message needs content '{name}' naming a parameter", field="messages"
                )
            history = params.get(name)
            if not isinstance(history, list | tuple):
                raise InvalidParams(
                    f"template parameter {{{name}}} must be a list of messages for chat_history", field=name
                )
            out.extend(history)
            continue
        rendered = dict(message)
        if "content" in rendered:
            rendered["content"] = _render_content(rendered["content"], params)
        out.append(rendered)
    return out


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


def _canonical(chat: list[Any] | None, text: str | None) -> str:
    content: Any = {"chat": chat} if chat is not None else {"text": text}
    return json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def template_version(chat: list[Any] | None, text: str | None) -> str:
    """The version of a template: a hash of its content, so a changed template is a new version."""
    return hashlib.sha256(_canonical(chat, text).encode()).hexdigest()[:16]


def template_name(chat: list[Any] | None, text: str | None) -> str:
    """A name for a template that was given none: its first words and a short hash of its content."""
    first = text
    if first is None:
        for message in chat or []:
            content = message.get("content") if isinstance(message, Mapping) else None
            if isinstance(content, str) and content.strip():
                first = content
                break
    words = _WORD.findall(first or "")[:6]
    slug = "-".join(w.lower() for w in words)[:60] or "prompt"
    return f"{slug}-{template_version(chat, text)[:8]}"
