"""Prompt templates: rendering ``{placeholder}`` templates, and THE one version of a template.

A template is chat messages or a text prompt whose ``{name}`` placeholders are filled from parameters
(``{{`` and ``}}`` are literal braces). A chat message with the role ``chat_history`` and the content
``{name}`` expands to the list of messages given as that parameter.

Its **version** is a hash of its content (the messages or the text, never the parameters): the SDK,
the gateway, the store and pipelines all compute it here, so one template recorded through any of
them is one version. Standard library only: the SDK imports it.

Managed prompts (saved in the dashboard or the API, fetched by the SDK, called by pipelines) are
stricter: their name starts with a letter (then letters, digits, ``_``), their arguments too, a
brace that is neither ``{{``, ``}}`` nor a placeholder is refused when saved (:func:`prompt_args`),
and rendering one (:func:`render_prompt`, :func:`render_messages`) refuses a missing or an unknown
argument. :func:`call_parameters` turns a managed prompt's parameters into OpenAI request arguments.
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
    "PROMPT_NAME",
    "VERSION_LENGTH",
    "TemplateError",
    "call_parameters",
    "check_args",
    "check_prompt_name",
    "messages_args",
    "placeholders",
    "prompt_args",
    "render_chat",
    "render_messages",
    "render_prompt",
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


# -- managed prompts ------------------------------------------------------------------------------

PROMPT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_NAME_MAX = 100
# Every brace of a managed template: a literal pair, a placeholder, or (refused when saved) anything else.
_STRICT = re.compile(r"\{\{|\}\}|\{([A-Za-z][A-Za-z0-9_]*)\}|\{[^{}]*\}?|\}")


def placeholders(text: str) -> list[str]:
    """The ``{name}`` placeholders of any template (recorded ones too), in order, each once: what
    :func:`render_text` fills. Stray braces are ignored, as rendering keeps them."""
    return list(dict.fromkeys(m.group(1) for m in _BRACES.finditer(text) if m.group(1)))


def check_prompt_name(name: Any, field: str = "name") -> str:
    """``name`` when it is a valid prompt name (a letter, then letters, digits or ``_``; at most 100)."""
    if not isinstance(name, str) or not PROMPT_NAME.fullmatch(name) or len(name) > _NAME_MAX:
        raise TemplateError(
            f"{field}: a prompt name starts with a letter and has only letters, digits and '_' "
            f"(at most {_NAME_MAX} characters); got {name!r}",
            field=field,
        )
    return name


def prompt_args(text: str, field: str = "template") -> list[str]:
    """The arguments of a managed text template, in order of first appearance.

    Raises :class:`TemplateError` at a brace that is not ``{{``, ``}}`` or ``{name}`` with a name
    starting with a letter: ``{ x }``, ``{1}``, ``{_x}`` or a lone ``{`` are mistakes more often than
    literal text, and ``{{``/``}}`` say the literal plainly.
    """
    found: dict[str, None] = {}
    for match in _STRICT.finditer(text):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        name = match.group(1)
        if name is None:
            raise TemplateError(
                f"{field}: {token[:40]!r} at character {match.start() + 1} is not an argument "
                "(an argument is {name}, its name starting with a letter; "
                "write {{ and }} for literal braces)",
                field=field,
            )
        found[name] = None
    return list(found)


def messages_args(messages: Any, field: str = "messages") -> list[str]:
    """The arguments of managed chat messages (each ``{"role": str, "content": str}``), in order."""
    if not isinstance(messages, list) or not messages:
        raise TemplateError(f"{field}: expected a non-empty list of {{role, content}} messages", field=field)
    found: dict[str, None] = {}
    for i, message in enumerate(messages):
        where = f"{field}[{i}]"
        if not isinstance(message, Mapping) or set(message) != {"role", "content"}:
            raise TemplateError(
                f"{where}: a message is an object with 'role' and 'content' only", field=field
            )
        role, content = message["role"], message["content"]
        if not isinstance(role, str) or not role.strip() or len(role) > 50:
            raise TemplateError(f"{where}.role: expected a role such as 'system' or 'user'", field=field)
        if not isinstance(content, str):
            raise TemplateError(f"{where}.content: expected text", field=field)
        found.update(dict.fromkeys(prompt_args(content, f"{where}.content")))
    return list(found)


def check_args(wanted: list[str], args: Mapping[str, Any]) -> None:
    """Refuse ``args`` that miss one of ``wanted`` or hold one more (:class:`TemplateError` naming it)."""
    missing = [name for name in wanted if name not in args]
    if missing:
        raise TemplateError(
            f"argument {missing[0]!r} is missing (the prompt takes {', '.join(wanted)})", field=missing[0]
        )
    unknown = [name for name in args if name not in wanted]
    if unknown:
        takes = f"it takes {', '.join(wanted)}" if wanted else "it takes none"
        raise TemplateError(f"the prompt has no argument {unknown[0]!r} ({takes})", field=str(unknown[0]))


def render_prompt(text: str, args: Mapping[str, Any]) -> str:
    """A managed text template rendered with exactly its arguments (a missing or unknown one is a
    :class:`TemplateError` naming it); values that are not text are written with ``str``."""
    check_args(prompt_args(text), args)
    return render_text(text, args)


def render_messages(messages: list[Any], args: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Managed chat messages rendered with exactly their arguments, as new ``{role, content}`` dicts."""
    check_args(messages_args(messages), args)
    return [{"role": m["role"], "content": render_text(m["content"], args)} for m in messages]


# A managed prompt's parameters as the wire spells them (camelCase), and the OpenAI argument of each.
_OPENAI_NAMES = {"maxTokens": "max_tokens", "topP": "top_p", "temperature": "temperature"}


def call_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAI request arguments of a managed prompt's ``parameters``: ``maxTokens`` → ``max_tokens``,
    ``topP`` → ``top_p``, ``jsonMode: true`` → ``response_format={"type": "json_object"}``; any other
    key is passed on as it is."""
    out: dict[str, Any] = {}
    for key, value in parameters.items():
        if key == "jsonMode":
            if value:
                out["response_format"] = {"type": "json_object"}
        else:
            out[_OPENAI_NAMES.get(key, key)] = value
    return out
