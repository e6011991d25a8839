"""Prompts: template names with their versions (managed ones with their labels, and those only recorded),
how often and at what cost each was used, its feedback, and the difference between two versions.

A template's versions are its contents, numbered v1, v2, ... in the order they first appeared
(``store.prompts.versions``); the page shows one row per version with its uses, cost, latency,
feedback and scores, and by default the last change (v(n-1) against v(n)), word by word.
Creating, editing, labels and test runs are in ``prompt_editor.py``, whose routes come first."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import APIRouter, Request
from starlette.responses import Response

from ....errors import InvalidInput, NotFound
from ....store.generations.reads.analytics import PromptUse, PromptVersion, prompt_usage, prompt_versions
from ....store.prompts import (
    TemplateVersion,
    VersionStats,
    list_prompts,
    numbered_versions,
    prompt_history,
    version_stats,
)
from ..core.context import ViewDep
from ..core.render import page
from ..core.timerange import RANGES, TimeRange, parse_range
from . import prompt_editor

router = APIRouter()
# /prompts/_new and /prompts/{name}/_edit|_label|_run, before /prompts/{name:path} takes everything.
router.include_router(prompt_editor.router)


@dataclass
class Usage:
    requests: int = 0
    cost: float = 0.0
    rated: int = 0
    rating_sum: int = 0
    up: int = 0
    down: int = 0
    last_us: int | None = None

    def add(self, use: PromptUse) -> None:
        self.requests += use.requests
        self.cost += use.cost
        self.rated += use.rated
        self.rating_sum += use.rating_sum
        self.up += use.thumbs_up
        self.down += use.thumbs_down
        self.last_us = max(self.last_us or 0, use.last_us)

    @property
    def rating(self) -> float | None:
        return self.rating_sum / self.rated if self.rated else None


@dataclass
class Prompt:
    name: str
    versions: list[PromptVersion] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)


def _range(request: Request) -> TimeRange:
    return parse_range(request.query_params, default="30d", allow_all=True)


@router.get("/prompts", include_in_schema=False)
def prompts_page(request: Request, view: ViewDep) -> Response:
    if view.project is None:
        return page(request, "empty.html", view=view, title="Prompts")
    tr = _range(request)
    with request.app.state.db.read() as conn:
        versions = prompt_versions(conn, view.project_id)
        uses = prompt_usage(conn, view.project_id, tr.from_us, tr.to_us, view.environment)
        managed = {p.name: p for p in list_prompts(conn, view.project_id)}
    prompts: dict[str, Prompt] = {}
    for v in versions:
        prompts.setdefault(v.name, Prompt(v.name)).versions.append(v)
    for use in uses:
        prompts.setdefault(use.name, Prompt(use.name)).usage.add(use)
    ordered = sorted(prompts.values(), key=lambda p: (-p.usage.requests, p.name))
    return page(
        request,
        "prompts.html",
        view=view,
        title="Prompts",
        prompts=ordered,
        managed=managed,
        range=tr,
        ranges=RANGES,
    )


class _Content(Protocol):
    @property
    def text(self) -> str | None: ...
    @property
    def chat(self) -> list[dict[str, Any]] | None: ...


def version_text(version: _Content) -> str:
    """A version's content as lines to compare: each chat message under its role, or the text."""
    if version.text is not None:
        return version.text
    lines = []
    for message in version.chat or []:
        content = message.get("content")
        body = content if isinstance(content, str) else json.dumps(content, indent=2, ensure_ascii=False)
        lines.append(f"[{message.get('role', 'message')}]\n{body}")
    return "\n\n".join(lines)


@dataclass(frozen=True, slots=True)
class DiffLine:
    kind: str  # "same", "add", "remove"
    text: str
    old: int | None
    new: int | None
    # the line cut into (text, changed) pieces: the words that differ from its counterpart are marked
    parts: tuple[tuple[str, bool], ...] = ()


_WORDS = re.compile(r"\s+|\w+|[^\w\s]")
_WORD_DIFF_MAX = 2_000  # longer lines are compared whole: difflib is quadratic


def _word_parts(old: str, new: str) -> tuple[tuple[tuple[str, bool], ...], tuple[tuple[str, bool], ...]]:
    """``old`` and ``new`` as pieces, the words only one of them has marked."""
    a, b = _WORDS.findall(old), _WORDS.findall(new)
    left: list[tuple[str, bool]] = []
    right: list[tuple[str, bool]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        left.append(("".join(a[i1:i2]), op != "equal"))
        right.append(("".join(b[j1:j2]), op != "equal"))
    return tuple(p for p in left if p[0]), tuple(p for p in right if p[0])


def diff(old: str, new: str) -> list[DiffLine]:
    """The lines of ``new`` against ``old``, each marked kept, added or removed; a line replaced by
    one other line has the words that changed marked."""
    a, b = old.splitlines(), new.splitlines()
    out: list[DiffLine] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.extend(DiffLine("same", a[i], i + 1, j1 + i - i1 + 1) for i in range(i1, i2))
            continue
        if (
            op == "replace"
            and i2 - i1 == j2 - j1
            and all(len(a[i]) + len(b[j1 + i - i1]) <= _WORD_DIFF_MAX for i in range(i1, i2))
        ):
            pairs = [_word_parts(a[i], b[j1 + i - i1]) for i in range(i1, i2)]
            out.extend(DiffLine("remove", a[i], i + 1, None, pairs[i - i1][0]) for i in range(i1, i2))
            out.extend(DiffLine("add", b[j], None, j + 1, pairs[j - j1][1]) for j in range(j1, j2))
            continue
        out.extend(DiffLine("remove", a[i], i + 1, None) for i in range(i1, i2))
        out.extend(DiffLine("add", b[j], None, j + 1) for j in range(j1, j2))
    return out


def _pick(
    versions: list[TemplateVersion], wanted: str | None, param: str, name: str
) -> TemplateVersion | None:
    """The version ``a`` or ``b`` names: ``v3``, ``3`` or a content hash."""
    if not wanted:
        return None
    key = wanted.strip()
    number = key[1:] if key[:1] in ("v", "V") else key
    for v in versions:
        if v.version == key or (number.isdigit() and len(number) < 10 and v.number == int(number)):
            return v
    raise InvalidInput(f"{param}: {name!r} has no version {key[:80]!r}", field=param)


@router.get("/prompts/{name:path}", include_in_schema=False)
def prompt_page(name: str, request: Request, view: ViewDep) -> Response:
    if "\x00" in name or len(name) > 200:  # no template has it (and PostgreSQL refuses a NUL)
        raise NotFound(f"no template named {name[:200]!r} in this project")
    tr = _range(request)
    with request.app.state.db.read() as conn:
        versions = numbered_versions(conn, view.project_id, name)
        stats, score_names = version_stats(
            conn, view.project_id, name, tr.from_us, tr.to_us, view.environment
        )
        managed = [p for p in prompt_history(conn, view.project_id, name) if p.version is not None]
    if not versions and not stats:
        raise NotFound(f"no template named {name!r} in this project")
    total = Usage()
    for version, s in stats.items():
        total.add(
            PromptUse(name, version, s.requests, s.cost, s.rated, s.rating_sum, s.up, s.down, s.last_us)
        )
    known = {v.version for v in versions}
    unrecorded = [(version, s) for version, s in stats.items() if version not in known]
    q = request.query_params
    # By default the last change: the version before the newest against the newest.
    new_v = _pick(versions, q.get("b"), "b", name) or (versions[-1] if versions else None)
    old_v = _pick(versions, q.get("a"), "a", name) or (versions[-2] if len(versions) > 1 else None)
    lines = []
    if old_v is not None and new_v is not None:
        lines = diff(version_text(old_v), version_text(new_v))
    return page(
        request,
        "prompt.html",
        view=view,
        title=f"Prompt {name}",
        name=name,
        versions=[(v, version_text(v), stats.get(v.version) or VersionStats()) for v in reversed(versions)],
        score_names=score_names,
        unrecorded=unrecorded,
        total=total,
        old_version=old_v,
        new_version=new_v,
        diff=lines,
        managed=managed,
        labels=sorted({label for p in managed for label in p.labels}),
        range=tr,
        ranges=RANGES,
    )
