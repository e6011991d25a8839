"""Prompts: template names with their versions (managed ones with their labels, and those only recorded),
how often and at what cost each was used, its feedback, and the difference between two versions.
Creating, editing, labels and test runs are in ``prompt_editor.py``, whose routes come first."""

from __future__ import annotations

import difflib
import json
from collections import defaultdict
from dataclasses import dataclass, field

from fastapi import APIRouter, Request
from starlette.responses import Response

from ...errors import InvalidInput, NotFound
from ...store.generations.analytics import PromptUse, PromptVersion, prompt_usage, prompt_versions
from ...store.prompts import list_prompts, prompt_history
from . import prompt_editor
from .context import ViewDep
from .render import page
from .timerange import RANGES, TimeRange, parse_range

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


def version_text(version: PromptVersion) -> str:
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


def diff(old: str, new: str) -> list[DiffLine]:
    """The lines of ``new`` against ``old``, each marked kept, added or removed."""
    a, b = old.splitlines(), new.splitlines()
    out: list[DiffLine] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.extend(DiffLine("same", a[i], i + 1, j1 + i - i1 + 1) for i in range(i1, i2))
            continue
        out.extend(DiffLine("remove", a[i], i + 1, None) for i in range(i1, i2))
        out.extend(DiffLine("add", b[j], None, j + 1) for j in range(j1, j2))
    return out


@router.get("/prompts/{name:path}", include_in_schema=False)
def prompt_page(name: str, request: Request, view: ViewDep) -> Response:
    if "\x00" in name or len(name) > 200:  # no template has it (and PostgreSQL refuses a NUL)
        raise NotFound(f"no template named {name[:200]!r} in this project")
    tr = _range(request)
    with request.app.state.db.read() as conn:
        versions = prompt_versions(conn, view.project_id, name)
        uses = prompt_usage(conn, view.project_id, tr.from_us, tr.to_us, view.environment, name)
        managed = [p for p in prompt_history(conn, view.project_id, name) if p.version is not None]
    if not versions and not uses:
        raise NotFound(f"no template named {name!r} in this project")
    per_version: dict[str | None, Usage] = defaultdict(Usage)
    total = Usage()
    for use in uses:
        per_version[use.version].add(use)
        total.add(use)
    known = {v.version for v in versions}
    unrecorded = [(version, usage) for version, usage in per_version.items() if version not in known]
    q = request.query_params
    by_version = {v.version: v for v in versions}
    new_v = q.get("b") or (versions[-1].version if versions else None)
    old_v = q.get("a") or (versions[-2].version if len(versions) > 1 else None)
    for wanted in (old_v, new_v):
        if wanted is not None and wanted not in by_version:
            raise InvalidInput(f"{name!r} has no version {wanted!r}", field="a")
    lines = []
    if old_v and new_v:
        lines = diff(version_text(by_version[old_v]), version_text(by_version[new_v]))
    return page(
        request,
        "prompt.html",
        view=view,
        title=f"Prompt {name}",
        name=name,
        versions=[(v, version_text(v), per_version.get(v.version, Usage())) for v in reversed(versions)],
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
