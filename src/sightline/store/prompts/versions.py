"""A template's versions as people name them (v1, v2, ...) and what each one did.

Versions come from template contents only (``prompt_versions``: one row per content hash recorded
under a name, by the SDK, the gateway or a managed save), numbered in the order they first appeared:
v1 is the oldest content. A managed prompt's labels (production, staging, ...) point at managed saves;
a save's content is one of these rows, so each label shows on the version whose content it points at.

Per version: uses, cost, latency p50/p95 (a histogram grouped in SQL, as the analytics page reads
it), feedback, the average of each score name (the latest score per generation), and the model used
most. They are read from the generations of that template in the range, through the
``(project_id, template_name, ts_us)`` index: one template's rows, never the whole table.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Connection, case, cast, func, select

from .. import tables as t
from ..generations.rollups import bin_middle, latency_bin_sql

__all__ = ["TemplateVersion", "VersionStats", "last_model", "numbered_versions", "version_stats"]

g, pv, m, lb = t.generations, t.prompt_versions, t.managed_prompts, t.prompt_labels
_SCORE_NAMES = 6  # score columns shown beside the versions, the most given first


@dataclass(frozen=True, slots=True)
class TemplateVersion:
    """One content of a template: its number (1 for the oldest), hash, when first seen and content."""

    name: str
    number: int
    version: str  # the content hash, as ``template.version`` of its generations
    created_us: int
    chat: list[dict[str, Any]] | None
    text: str | None
    labels: tuple[str, ...] = ()
    saves: tuple[int, ...] = ()  # the managed saves with this content (their numbers)

    @property
    def tag(self) -> str:
        return f"v{self.number}"


def numbered_versions(conn: Connection, project_id: int, name: str) -> list[TemplateVersion]:
    """Every content recorded under ``name``, oldest first, numbered from 1, with its labels."""
    saves: dict[str, list[int]] = defaultdict(list)
    for number, content in conn.execute(
        select(m.c.version, m.c.template_version)
        .where(m.c.project_id == project_id, m.c.name == name)
        .order_by(m.c.version)
    ):
        saves[content].append(int(number))
    labels: dict[int, list[str]] = defaultdict(list)
    for label, number in conn.execute(
        select(lb.c.label, lb.c.version)
        .where(lb.c.project_id == project_id, lb.c.name == name)
        .order_by(lb.c.label)
    ):
        labels[int(number)].append(label)
    rows = conn.execute(
        select(pv.c.version, pv.c.created_us, pv.c.body)
        .where(pv.c.project_id == project_id, pv.c.name == name)
        .order_by(pv.c.created_us, pv.c.version)
    )
    out = []
    for i, (version, created_us, body) in enumerate(rows, start=1):
        numbers = tuple(saves.get(version, ()))
        body = body or {}
        out.append(
            TemplateVersion(
                name=name,
                number=i,
                version=version,
                created_us=int(created_us),
                chat=body.get("chat"),
                text=body.get("text"),
                labels=tuple(label for n in numbers for label in labels.get(n, ())),
                saves=numbers,
            )
        )
    return out


@dataclass
class VersionStats:
    """What the generations of one template version did in a range."""

    requests: int = 0
    errors: int = 0
    cost: float = 0.0
    tokens: int = 0
    rated: int = 0
    rating_sum: int = 0
    up: int = 0
    down: int = 0
    last_us: int = 0
    p50: float | None = None
    p95: float | None = None
    model: str | None = None  # the model it was called with most
    scores: dict[str, float] = field(default_factory=dict)  # name -> average value

    @property
    def rating(self) -> float | None:
        return self.rating_sum / self.rated if self.rated else None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


def _where(
    project_id: int, name: str, from_us: int | None, to_us: int | None, environment: str | None
) -> list[ColumnElement[bool]]:
    cond: list[ColumnElement[bool]] = [g.c.project_id == project_id, g.c.template_name == name]
    if from_us is not None:
        cond.append(g.c.ts_us >= from_us)
    if to_us is not None:
        cond.append(g.c.ts_us < to_us)
    if environment:
        cond.append(g.c.environment == environment)
    return cond


def _quantile(bins: list[tuple[int, int]], total: int, q: float) -> float:
    rank, seen = q * total, 0
    for index, n in bins:
        seen += n
        if seen >= rank:
            return bin_middle(index)
    return bin_middle(bins[-1][0])


def version_stats(
    conn: Connection,
    project_id: int,
    name: str,
    from_us: int | None = None,
    to_us: int | None = None,
    environment: str | None = None,
) -> tuple[dict[str | None, VersionStats], list[str]]:
    """Per template version (``None``: generations without one): uses, cost, latency, feedback,
    scores; and the score names shown (those given most, at most a few)."""
    cond = _where(project_id, name, from_us, to_us, environment)
    stats: dict[str | None, VersionStats] = defaultdict(VersionStats)
    models: dict[str | None, dict[str, int]] = defaultdict(dict)
    q = (
        select(
            g.c.template_version,
            g.c.model_id,
            func.count(),
            func.sum(case((g.c.status == "error", 1), else_=0)),
            func.coalesce(func.sum(g.c.cost), 0.0),
            func.coalesce(func.sum(g.c.total_tokens), 0),
            func.count(g.c.feedback_rating),
            func.coalesce(func.sum(g.c.feedback_rating), 0),
            func.sum(case((g.c.feedback_thumbs == "up", 1), else_=0)),
            func.sum(case((g.c.feedback_thumbs == "down", 1), else_=0)),
            func.max(g.c.ts_us),
        )
        .where(*cond)
        .group_by(g.c.template_version, g.c.model_id)
    )
    for version, model, n, errors, cost, tokens, rated, rating_sum, up, down, last in conn.execute(q):
        s = stats[version]
        s.requests += int(n)
        s.errors += int(errors or 0)
        s.cost += float(cost or 0)
        s.tokens += int(tokens or 0)
        s.rated += int(rated or 0)
        s.rating_sum += int(rating_sum or 0)
        s.up += int(up or 0)
        s.down += int(down or 0)
        s.last_us = max(s.last_us, int(last or 0))
        models[version][model] = int(n)
    for version, counts in models.items():
        stats[version].model = max(sorted(counts), key=lambda k: counts[k])
    _latencies(conn, cond, stats)
    names = _scores(conn, project_id, cond, stats)
    return dict(stats), names


def _latencies(
    conn: Connection, cond: list[ColumnElement[bool]], stats: dict[str | None, VersionStats]
) -> None:
    # Cache hits answer in no time: they would pull a version's percentiles down.
    histogram_bin = latency_bin_sql(cast(g.c.latency_ms, BigInteger)).label("bin")
    q = (
        select(g.c.template_version, histogram_bin, func.count())
        .where(*cond, g.c.cache_hit.is_(False))
        .group_by(g.c.template_version, histogram_bin)
    )
    bins: dict[str | None, list[tuple[int, int]]] = defaultdict(list)
    for version, index, n in conn.execute(q):
        bins[version].append((int(index), int(n)))
    for version, found in bins.items():
        found.sort()
        total = sum(n for _, n in found)
        if total:
            s = stats[version]
            s.p50, s.p95 = _quantile(found, total, 0.5), _quantile(found, total, 0.95)


def _scores(
    conn: Connection, project_id: int, cond: list[ColumnElement[bool]], stats: dict[str | None, VersionStats]
) -> list[str]:
    sl = t.score_latest
    q = (
        select(g.c.template_version, sl.c.name, func.avg(sl.c.value), func.count(sl.c.value))
        .select_from(g.join(sl, (sl.c.project_id == g.c.project_id) & (sl.c.generation_id == g.c.id)))
        # Feedback is scored too (feedback.rating, ...): the versions show it as feedback already.
        .where(*cond, sl.c.value.is_not(None), sl.c.name.not_like("feedback.%"))
        .group_by(g.c.template_version, sl.c.name)
    )
    given: dict[str, int] = defaultdict(int)
    for version, score, average, n in conn.execute(q):
        stats[version].scores[score] = float(average)
        given[score] += int(n)
    return sorted(given, key=lambda k: (-given[k], k))[:_SCORE_NAMES]


def last_model(conn: Connection, project_id: int, name: str, version: str) -> str | None:
    """The model the latest generation of ``name`` at ``version`` called (to try it again with)."""
    q = (
        select(g.c.model_id)
        .where(g.c.project_id == project_id, g.c.template_name == name, g.c.template_version == version)
        .order_by(g.c.ts_us.desc())
        .limit(1)
    )
    found = conn.scalar(q)
    return str(found) if found is not None else None
