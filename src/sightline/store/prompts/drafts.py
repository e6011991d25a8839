"""What a save of a managed prompt must hold, checked before anything is written.

A draft comes from the API's JSON body or the dashboard's form: a name, a text ``template`` or chat
``messages`` (not both), and optionally a ``model``, ``parameters`` and a ``description``. Every
refusal is an :class:`~sightline.errors.InvalidInput` naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ... import templating
from ...errors import InvalidInput

__all__ = ["LABEL_MAX", "PromptDraft", "check_label", "parse_draft"]

TEMPLATE_MAX = 100_000  # characters of a text template, or of all messages' content together
MESSAGES_MAX = 100
DESCRIPTION_MAX = 2_000
MODEL_MAX = 200
PARAMETERS_MAX = 10_000  # bytes of the parameters as JSON
LABEL_MAX = 64
_FIELDS = {"name", "template", "messages", "model", "parameters", "description"}


@dataclass(frozen=True, slots=True)
class PromptDraft:
    """A checked prompt, ready to be saved as a new version."""

    name: str
    text: str | None
    messages: list[dict[str, str]] | None
    args: list[str]
    model: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    description: str | None = None

    @property
    def body(self) -> dict[str, Any]:
        """The template as ``prompt_versions`` and the generations' ``template`` hold it."""
        return {"chat": self.messages} if self.messages is not None else {"text": self.text}

    @property
    def template_version(self) -> str:
        """THE version of this content: what a generation made from it carries."""
        return templating.template_version(self.messages, self.text)


def _text(value: Any, name: str, limit: int, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{name}: expected text", field=name)
    if not empty and not value.strip():
        raise InvalidInput(f"{name}: must not be empty", field=name)
    if len(value) > limit:
        raise InvalidInput(f"{name}: at most {limit} characters (got {len(value)})", field=name)
    if "\x00" in value:
        raise InvalidInput(f"{name}: must not contain a NUL character", field=name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{name}: is not valid Unicode text (a lone surrogate)", field=name) from None
    return value


def _optional(value: Any, name: str, limit: int) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _text(value, name, limit).strip()


def _number(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"parameters.{name}: expected a number", field=f"parameters.{name}")
    if not low <= value <= high:
        raise InvalidInput(f"parameters.{name}: must be from {low:g} to {high:g}", field=f"parameters.{name}")
    return value


def check_parameters(value: Any) -> dict[str, Any]:
    """A prompt's parameters: ``temperature`` (0-2), ``topP`` (0-1), ``maxTokens`` (a positive
    integer), ``jsonMode`` (true/false), and any other JSON value under a plain key."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInput("parameters: expected an object", field="parameters")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if (
            not isinstance(key, str)
            or not key
            or len(key) > 64
            or not key.isascii()
            or not key.replace("_", "a").isalnum()
        ):
            raise InvalidInput(f"parameters: {str(key)[:64]!r} is not a parameter name", field="parameters")
        if item is None:
            continue
        if key == "temperature":
            out[key] = _number(item, key, 0, 2)
        elif key == "topP":
            out[key] = _number(item, key, 0, 1)
        elif key == "maxTokens":
            if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= 10_000_000:
                raise InvalidInput(
                    "parameters.maxTokens: expected a positive integer", field="parameters.maxTokens"
                )
            out[key] = item
        elif key == "jsonMode":
            if not isinstance(item, bool):
                raise InvalidInput("parameters.jsonMode: expected true or false", field="parameters.jsonMode")
            out[key] = item
        elif key in ("model", "messages", "prompt", "stream"):
            raise InvalidInput(
                f"parameters.{key}: not a parameter (give it its own field)", field="parameters"
            )
        else:
            out[key] = item
    try:
        encoded = orjson.dumps(out)
    except (TypeError, orjson.JSONEncodeError):
        raise InvalidInput("parameters: must be plain JSON values", field="parameters") from None
    if len(encoded) > PARAMETERS_MAX:
        raise InvalidInput(f"parameters: at most {PARAMETERS_MAX} bytes as JSON", field="parameters")
    return out


def check_label(value: Any) -> str:
    """A label's name: a letter, then letters, digits, ``_``, ``-`` or ``.`` (``latest`` is what a
    fetch without a label or version means, so it is no label)."""
    if (
        not isinstance(value, str)
        or not value
        or len(value) > LABEL_MAX
        or not value[0].isascii()
        or not value[0].isalpha()
        or not all(c.isascii() and (c.isalnum() or c in "_-.") for c in value)
    ):
        raise InvalidInput(
            f"label: starts with a letter, then letters, digits, '_', '-' or '.' (at most {LABEL_MAX}); "
            f"got {str(value)[:80]!r}",
            field="label",
        )
    if value == "latest":
        raise InvalidInput("label: 'latest' is not a label (it is what no label means)", field="label")
    return value


def parse_draft(body: Any) -> PromptDraft:
    """A :class:`PromptDraft` from the API's JSON body (or the dashboard's form as a dict)."""
    if not isinstance(body, Mapping):
        raise InvalidInput("expected a JSON object with 'name' and 'template' or 'messages'", field="body")
    unknown = sorted(str(k) for k in body if k not in _FIELDS)
    if unknown:
        raise InvalidInput(
            f"{unknown[0]}: not a field of a prompt "
            "(name, template, messages, model, parameters, description)",
            field=unknown[0],
        )
    try:
        name = templating.check_prompt_name(body.get("name"))
    except templating.TemplateError as exc:
        raise InvalidInput(exc.message, field="name") from None
    template, messages = body.get("template"), body.get("messages")
    if (template is None) == (messages is None):
        raise InvalidInput(
            "template: give either 'template' (text) or 'messages' (chat), not both", field="template"
        )
    text: str | None = None
    chat: list[dict[str, str]] | None = None
    try:
        if template is not None:
            text = _text(template, "template", TEMPLATE_MAX)
            args = templating.prompt_args(text)
        else:
            if isinstance(messages, list) and len(messages) > MESSAGES_MAX:
                raise InvalidInput(f"messages: at most {MESSAGES_MAX} messages", field="messages")
            args = templating.messages_args(messages)
            assert isinstance(messages, list)  # messages_args refuses anything else
            chat = [{"role": m["role"], "content": m["content"]} for m in messages]
            total = 0
            for i, m in enumerate(chat):
                _text(m["role"], f"messages[{i}].role", 50)
                total += len(_text(m["content"], f"messages[{i}].content", TEMPLATE_MAX, empty=True))
            if total > TEMPLATE_MAX:
                raise InvalidInput(f"messages: at most {TEMPLATE_MAX} characters in all", field="messages")
    except templating.TemplateError as exc:
        raise InvalidInput(
            exc.message, field=exc.field or ("template" if text is not None else "messages")
        ) from None
    return PromptDraft(
        name=name,
        text=text,
        messages=chat,
        args=args,
        model=_optional(body.get("model"), "model", MODEL_MAX),
        parameters=check_parameters(body.get("parameters")),
        description=_optional(body.get("description"), "description", DESCRIPTION_MAX),
    )
