"""Prompt templates: rendering ``{placeholder}`` templates, and THE one version of a template.

A template is chat messages or a text prompt whose ``{name}`` placeholders are filled from parameters
(``{{`` and ``}}`` are literal braces). A chat message with the role ``chat_history`` and the content
``{name}`` expands to the list of messages given as that parameter.

Its **version** is a hash of its content (the messages or the text, never the parameters): the SDK,
the gateway, the store and pipelines all compute it here, so one template recorded through any of
them is one version. Standard library only: the SDK imports it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from sightline.errors import InvalidInput

__all__ = [
    "CHAT_HISTORY_ROLE",
    "VERSION_LENGTH",
    "TemplateError",
    "render_chat",
    "render_text",
    "template_name",
    "template_version",
]

CHAT_HISTORY_ROLE = "chat_history"
VERSION_LENGTH = 16  # hex digits of the version: 64 bits, no collision among a project's templates

_BRACES = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WORD = re.compile(r"[A-Za-z0-9]+")


class TemplateError(InvalidInput, ValueError):
    """A template cannot be rendered with the parameters given (``field`` names the parameter)."""


def render_text(text: str, params: Mapping[str, Any]) -> str:
    """``text`` with each ``{name}`` replaced by ``params[name]`` (``{{``/``}}`` become ``{``/``}``).

    Braces that are not a placeholder (``{"k": 1}``) are kept as they are. Raises
    :class:`TemplateError` naming a placeholder that ``params`` lacks.
    """

    def one(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        name = match.group(1)
        if name not in params:
            raise TemplateError(f"template parameter {{{name}}} is not given", field=name)
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
    """Template messages rendered with ``params`` (text content and text parts); ``chat_history``
    messages expand in place. The messages given are left as they were."""
    out: list[Any] = []
    for message in messages:
        if not isinstance(message, Mapping):
            raise TemplateError(
                "a template message must be a dict with 'role' and 'content'", field="messages"
            )
        if message.get("role") == CHAT_HISTORY_ROLE:
            content = message.get("content")
            match = _BRACES.fullmatch(content) if isinstance(content, str) else None
            name = match.group(1) if match else None
            if name is None:
                raise TemplateError(
                    "a chat_history message needs content '{name}' naming a parameter", field="messages"
                )
            history = params.get(name)
            if not isinstance(history, list | tuple):
                raise TemplateError(
                    f"template parameter {{{name}}} must be a list of messages for chat_history", field=name
                )
            out.extend(history)
            continue
        rendered = dict(message)
        if "content" in rendered:
            rendered["content"] = _render_content(rendered["content"], params)
        out.append(rendered)
    return out


def _canonical(chat: list[Any] | None, text: str | None) -> bytes:
    """The content of a template as one text: JSON with sorted keys and no spaces, so the order in
    which a client happened to write a message's keys makes no new version."""
    if chat is not None and text is not None:
        content: dict[str, Any] = {"chat": chat, "text": text}
    elif chat is not None:
        content = {"chat": chat}
    else:
        content = {"text": text}
    encoded = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    # surrogatepass: a lone surrogate in a caller's string must not make the version fail
    return encoded.encode("utf-8", "surrogatepass")


def template_version(chat: list[Any] | None, text: str | None) -> str:
    """THE version of a template: the first 16 hex digits of the SHA-256 of its content.

    The content is the chat messages and/or the text as given (placeholders unrendered), never the
    parameters: a changed template is a new version, a new parameter value is not.
    """
    return hashlib.sha256(_canonical(chat, text)).hexdigest()[:VERSION_LENGTH]


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
