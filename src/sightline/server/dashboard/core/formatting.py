"""Records made ready to show: messages, code and JSON blocks, metadata links, table rows.

Pages get plain view objects from here so templates hold no logic beyond loops and conditions.
Nothing here marks text as safe HTML: templates escape all of it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ....schema import KNOWN_METADATA_KEYS, metadata_value_text
from .render import feedback_parts, safe_link

__all__ = [
    "Block",
    "Message",
    "MetaItem",
    "Row",
    "blocks",
    "detail",
    "feedback_parts",
    "feedback_summary",
    "messages",
    "metadata_items",
    "row",
    "tokens_per_second",
]

_MEASURABLE_TOKENS, _MEASURABLE_MS = 5, 100.0
_FENCE = re.compile(r"```([\w+#.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)


@dataclass(frozen=True, slots=True)
class Block:
    """A piece of content: ``text`` (wrapped prose), ``code`` (with its language) or ``json``."""

    kind: str
    text: str
    language: str = ""


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def blocks(content: Any, kind: str = "text") -> list[Block]:
    """Content split into blocks: JSON pretty-printed, fenced code apart from the prose around it."""
    if content is None:
        return []
    if isinstance(content, dict | list):
        return [Block("json", _pretty_json(content), "json")]
    text = str(content)
    stripped = text.strip()
    if kind == "json" or (stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]")):
        try:
            return [Block("json", _pretty_json(json.loads(stripped)), "json")]
        except ValueError:
            pass
    if kind == "code":
        match = _FENCE.fullmatch(stripped)
        if match:
            return [Block("code", match.group(2).rstrip("\n"), match.group(1))]
        return [Block("code", text)]
    out: list[Block] = []
    position = 0
    for match in _FENCE.finditer(text):
        before = text[position : match.start()].strip("\n")
        if before.strip():
            out.append(Block("text", before))
        out.append(Block("code", match.group(2).rstrip("\n"), match.group(1).lower()))
        position = match.end()
    rest = text[position:].strip("\n")
    if rest.strip() or not out:
        out.append(Block("text", rest))
    return out


@dataclass
class Message:
    role: str
    blocks: list[Block]
    name: str | None = None
    attachments: list[tuple[str, str | None]] = field(default_factory=list)  # (label, safe link)
    extra: Block | None = None


def _part_blocks(parts: list[Any], message: Message) -> None:
    for part in parts:
        if not isinstance(part, dict):
            message.blocks.extend(blocks(part))
            continue
        kind = part.get("type")
        if kind in ("text", "input_text", "output_text"):
            message.blocks.extend(blocks(part.get("text")))
        elif kind in ("image_url", "input_image"):
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            label = "image (inline data)" if str(url).startswith("data:") else f"image: {url}"
            message.attachments.append((label, safe_link(url)))
        elif kind in ("input_audio", "audio"):
            message.attachments.append(("audio", None))
        else:
            message.blocks.append(Block("json", _pretty_json(part), "json"))


def messages(content: Any) -> list[Message]:
    """An input's messages (or its prompt text as one ``prompt`` message)."""
    if content is None:
        return []
    if not isinstance(content, list):
        return [Message("prompt", blocks(content))]
    out = []
    for item in content:
        if not isinstance(item, dict):
            out.append(Message("message", blocks(item)))
            continue
        message = Message(str(item.get("role") or "message"), [], item.get("name"))
        body = item.get("content")
        if isinstance(body, list):
            _part_blocks(body, message)
        else:
            message.blocks.extend(blocks(body))
        extra = {k: v for k, v in item.items() if k not in ("role", "content", "name")}
        if extra:
            message.extra = Block("json", _pretty_json(extra), "json")
        out.append(message)
    return out


@dataclass(frozen=True, slots=True)
class MetaItem:
    key: str
    text: str
    link: str | None = None
    kind: str = "string"


def metadata_items(metadata: dict[str, Any]) -> list[MetaItem]:
    """Metadata as rows; a url value is a link showing its text (when its address is safe to follow)."""
    items = []
    for key in sorted(metadata, key=lambda k: (k not in KNOWN_METADATA_KEYS, k)):
        value = metadata[key]
        if key == "tags" and isinstance(value, list):
            items.append(MetaItem(key, ", ".join(str(v) for v in value), kind="tags"))
        elif isinstance(value, dict) and value.get("type") == "url":
            url = str(value.get("url", ""))
            items.append(MetaItem(key, str(value.get("text") or url), safe_link(url), "url"))
        elif isinstance(value, dict) and value.get("type") == "boolean":
            items.append(MetaItem(key, metadata_value_text(value), kind="boolean"))
        else:
            items.append(MetaItem(key, metadata_value_text(value)))
    return items


def tokens_per_second(gen: dict[str, Any]) -> float | None:
    """The record's tokens per second, or completion tokens over the time after the first token."""
    perf, usage = gen.get("performance") or {}, gen.get("usage") or {}
    if perf.get("tokensPerSecond") is not None:
        return float(perf["tokensPerSecond"])
    completion, latency = usage.get("completionTokens") or 0, perf.get("latency") or 0
    generating = latency - (perf.get("timeToFirstToken") or 0)
    if completion >= _MEASURABLE_TOKENS and generating >= _MEASURABLE_MS:
        return float(completion) / (generating / 1000)
    return None  # too short to measure: a rate off a few tokens or milliseconds says nothing


def feedback_summary(fb: dict[str, Any] | None) -> str:
    """A short text for a feedback: ``★4 ▲ “comment…”`` (▲ thumbs up, ▼ down; ``score 0.8``: 0 to 1)."""
    if not fb:
        return ""
    parts = [text for _, text, _ in feedback_parts(fb)]
    if fb.get("comment"):
        comment = str(fb["comment"])
        parts.append(f"“{comment[:40]}{'…' if len(comment) > 40 else ''}”")
    return " ".join(parts) or "✓"


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the generations table."""

    id: str
    timestamp: str
    model: str
    template: str | None
    template_version: str | None
    user: str | None
    status: str
    error: str | None
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: float | None
    latency: float | None
    ttft: float | None
    cache_hit: bool
    feedback: str
    run_id: str | None
    chat_id: str | None
    preview: str
    scores: list[tuple[str, str, str]] = field(default_factory=list)  # (name, shown, what filters on it)


def score_text(score: dict[str, Any]) -> str:
    """A score as a cell shows it: its value (shortest form), its label, or both."""
    value, label = score.get("value"), score.get("label")
    shown = f"{value:.3g}" if isinstance(value, float | int) and not isinstance(value, bool) else ""
    return f"{shown} {label}".strip() if label and label not in ("up", "down") else shown or str(label or "")


def _scores(gen: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The record's latest scores but the feedback's own (the feedback column shows those)."""
    return [
        (name, score_text(s), s.get("label") or repr(s.get("value")))
        for name, s in sorted((gen.get("scores") or {}).items())
        if not name.startswith("feedback.")
    ]


def _preview(gen: dict[str, Any]) -> str:
    content = (gen.get("output") or {}).get("content")
    text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
    if content is None:
        text = ""
    text = " ".join(text.split())
    return text[:120] + ("…" if len(text) > 120 else "")


def row(gen: dict[str, Any]) -> Row:
    usage, perf = gen.get("usage") or {}, gen.get("performance") or {}
    template = gen.get("template") or {}
    error = gen.get("error") or {}
    return Row(
        id=gen["id"],
        timestamp=gen.get("timestamp", ""),
        model=(gen.get("model") or {}).get("id", ""),
        template=template.get("name"),
        template_version=template.get("version"),
        user=(gen.get("metadata") or {}).get("userId"),
        status=gen.get("status", "ok"),
        error=error.get("type") if error else None,
        prompt_tokens=usage.get("promptTokens") or 0,
        completion_tokens=usage.get("completionTokens") or 0,
        total_tokens=usage.get("totalTokens") or 0,
        cost=usage.get("cost"),
        latency=perf.get("latency"),
        ttft=perf.get("timeToFirstToken"),
        cache_hit=bool(gen.get("cacheHit")),
        feedback=feedback_summary(gen.get("feedback")),
        run_id=gen.get("runId"),
        chat_id=gen.get("chatId"),
        preview=_preview(gen),
        scores=_scores(gen),
    )


@dataclass
class Detail:
    """Everything the page of one generation shows, ready to print."""

    gen: dict[str, Any]
    row: Row
    input: list[Message]
    output: list[Block]
    alternatives: list[tuple[list[Block], Any]]
    template_messages: list[Message]
    template_params: list[tuple[str, Block]]
    parameters: list[tuple[str, str]]
    metadata: list[MetaItem]
    tokens_per_second: float | None
    error: dict[str, Any] | None


def _param_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def detail(gen: dict[str, Any]) -> Detail:
    output = gen.get("output") or {}
    template = gen.get("template") or {}
    template_messages = messages(template.get("chat")) if template.get("chat") else []
    if template.get("text") is not None:
        template_messages.append(Message("template", [Block("text", str(template["text"]))]))
    params = [
        (str(k), blocks(v)[0] if isinstance(v, dict | list) else Block("text", _param_text(v)))
        for k, v in (template.get("params") or {}).items()
    ]
    return Detail(
        gen=gen,
        row=row(gen),
        input=messages((gen.get("input") or {}).get("content")),
        output=blocks(output.get("content"), output.get("type", "text")),
        alternatives=[
            (blocks(alt.get("content"), output.get("type", "text")), alt.get("score"))
            for alt in output.get("alternatives") or []
        ],
        template_messages=template_messages,
        template_params=params,
        parameters=[(str(k), _param_text(v)) for k, v in (gen.get("parameters") or {}).items()],
        metadata=metadata_items(gen.get("metadata") or {}),
        tokens_per_second=tokens_per_second(gen),
        error=gen.get("error"),
    )
