"""Evaluators: their versioned definitions, where online evaluation has got to, and what they gave.

An evaluator is named per project. Its *definition* (type, config, the score's name) is versioned:
saving a changed definition adds a version, and every score names the version that gave it. Its
*attachment* (the filter of generations it evaluates online, the sampling rate, on or off) is
changed in place. Online evaluation follows the ingest sequence (``generations.seq``) from the
evaluator's cursor: :class:`AdvanceEvaluator` records a batch's scores and moves the cursor in one
transaction, only from where the batch started, so a batch is recorded once whoever runs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, case, func, insert, select, update

from ...errors import Conflict, NotFound
from .. import tables as t
from ..access.audit import Actor, record_audit
from ..generations.pricing import price
from ..generations.reads.queries import to_wire
from ..generations.records import iso
from ..mongo.filter import compile_filter
from .scores import write_scores

__all__ = [
    "AdvanceEvaluator",
    "Evaluator",
    "SaveEvaluator",
    "Saved",
    "UpdateAttachment",
    "definition_at",
    "estimate",
    "evaluator_stats",
    "get_evaluator",
    "list_evaluators",
    "online_evaluators",
    "pending_generations",
    "recent_results",
]

e = t.evaluators


@dataclass(frozen=True, slots=True)
class Evaluator:
    """An evaluator's current definition and attachment."""

    id: int
    project_id: int
    name: str
    version: int
    type: str
    config: dict[str, Any]
    score_name: str
    filter: dict[str, Any] | None
    sample_rate: float
    enabled: bool
    cursor_seq: int
    created_us: int
    updated_us: int

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "type": self.type,
            "config": self.config,
            "scoreName": self.score_name,
            "filter": self.filter,
            "sampleRate": self.sample_rate,
            "enabled": self.enabled,
            "online": self.enabled and self.filter is not None,
            "createdAt": iso(self.created_us),
            "updatedAt": iso(self.updated_us),
        }


def _evaluator(row: Any) -> Evaluator:
    return Evaluator(
        id=row.id,
        project_id=row.project_id,
        name=row.name,
        version=row.version,
        type=row.type,
        config=dict(row.config or {}),
        score_name=row.score_name,
        filter=row.filter,
        sample_rate=row.sample_rate,
        enabled=bool(row.enabled),
        cursor_seq=row.cursor_seq,
        created_us=row.created_us,
        updated_us=row.updated_us,
    )


@dataclass(frozen=True, slots=True)
class Saved:
    id: int
    version: int
    created: bool  # a new evaluator
    changed: bool  # a new version (or a new evaluator)


def _max_seq(conn: Connection) -> int:
    return int(conn.scalar(select(func.max(t.generations.c.seq))) or 0)


@dataclass(slots=True)
class SaveEvaluator:
    """Create the evaluator ``name``, or save a new version of it when its definition differs; its
    attachment (filter, sample rate, enabled) is set either way. A new evaluator evaluates online
    only what is written from now on (backfills are for the past)."""

    project_id: int
    name: str
    type: str
    config: dict[str, Any]
    score_name: str
    filter: dict[str, Any] | None
    sample_rate: float
    enabled: bool
    actor: Actor
    now_us: int
    size: int = 1

    def apply(self, conn: Connection) -> Saved:
        row = conn.execute(select(e).where(e.c.project_id == self.project_id, e.c.name == self.name)).first()
        attachment = {
            "filter": self.filter,
            "sample_rate": self.sample_rate,
            "enabled": self.enabled,
            "updated_us": self.now_us,
            "updated_by": self.actor.label,
        }
        definition = {"type": self.type, "config": self.config, "score_name": self.score_name}
        if row is None:
            evaluator_id = int(
                conn.execute(
                    insert(e)
                    .values(
                        project_id=self.project_id,
                        name=self.name,
                        version=1,
                        cursor_seq=_max_seq(conn),
                        created_us=self.now_us,
                        **definition,
                        **attachment,
                    )
                    .returning(e.c.id)
                ).scalar_one()
            )
            version, created, changed = 1, True, True
        else:
            evaluator_id, created = row.id, False
            changed = (row.type, row.config, row.score_name) != (self.type, self.config, self.score_name)
            version = row.version + 1 if changed else row.version
            values = {**attachment, **definition, "version": version} if changed else attachment
            conn.execute(update(e).where(e.c.id == evaluator_id).values(**values))
        if changed:
            conn.execute(
                insert(t.evaluator_versions).values(
                    evaluator_id=evaluator_id,
                    version=version,
                    created_us=self.now_us,
                    created_by=self.actor.label,
                    **definition,
                )
            )
        record_audit(
            conn,
            self.actor,
            "evaluator.save",
            f"{self.name} v{version}",
            project_id=self.project_id,
            details={"type": self.type, "enabled": self.enabled, "sampleRate": self.sample_rate},
            now_us=self.now_us,
        )
        return Saved(evaluator_id, version, created, changed)


@dataclass(slots=True)
class UpdateAttachment:
    """Change what an evaluator evaluates online (``None``: leave as it is; ``clear_filter``: none)."""

    project_id: int
    evaluator_id: int
    filter: dict[str, Any] | None
    clear_filter: bool
    sample_rate: float | None
    enabled: bool | None
    actor: Actor
    now_us: int
    size: int = 1

    def apply(self, conn: Connection) -> None:
        values: dict[str, Any] = {"updated_us": self.now_us, "updated_by": self.actor.label}
        if self.filter is not None or self.clear_filter:
            values["filter"] = self.filter
        if self.sample_rate is not None:
            values["sample_rate"] = self.sample_rate
        if self.enabled is not None:
            values["enabled"] = self.enabled
        done = conn.execute(
            update(e).where(e.c.id == self.evaluator_id, e.c.project_id == self.project_id).values(**values)
        )
        if not done.rowcount:
            raise NotFound(f"no evaluator {self.evaluator_id} in this project")
        record_audit(
            conn,
            self.actor,
            "evaluator.attach",
            str(self.evaluator_id),
            project_id=self.project_id,
            details={k: v for k, v in values.items() if k in ("sample_rate", "enabled")},
            now_us=self.now_us,
        )


@dataclass(slots=True)
class AdvanceEvaluator:
    """Record the scores of one batch of online evaluation and move the evaluator's cursor from
    ``from_seq`` to ``to_seq``; :class:`Conflict` (nothing written) when the cursor is no longer at
    ``from_seq`` (another worker recorded this batch)."""

    evaluator_id: int
    from_seq: int
    to_seq: int
    rows: list[dict[str, Any]]
    size: int = 1

    def apply(self, conn: Connection) -> int:
        moved = conn.execute(
            update(e)
            .where(e.c.id == self.evaluator_id, e.c.cursor_seq == self.from_seq)
            .values(cursor_seq=self.to_seq)
        )
        if not moved.rowcount:
            raise Conflict(f"evaluator {self.evaluator_id} has moved past {self.from_seq}")
        write_scores(conn, self.rows)
        return len(self.rows)


# Online evaluation never evaluates a judge's own call (it is tagged so by ``evals.judge``).
_NOT_A_JUDGE = {"metadata.tags": {"$ne": "sightline:judge"}}


def pending_generations(
    conn: Connection, evaluator: Evaluator, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """The next generations online evaluation of ``evaluator`` takes (after its cursor, matching its
    filter, in the order they were written; at most ``limit``), as records, and the cursor that
    follows them. The cursor moves past what does not match too: up to the last number written when
    fewer than ``limit`` matched."""
    g = t.generations
    last = _max_seq(conn)
    if last <= evaluator.cursor_seq:
        return [], evaluator.cursor_seq
    condition = compile_filter({"$and": [evaluator.filter or {}, _NOT_A_JUDGE]})
    q = (
        select(g)
        .where(
            g.c.project_id == evaluator.project_id,
            g.c.seq > evaluator.cursor_seq,
            g.c.seq <= last,
            condition,
        )
        .order_by(g.c.seq)
        .limit(limit)
    )
    rows = [r._mapping for r in conn.execute(q)]
    cursor = int(rows[-1]["seq"]) if len(rows) >= limit else last
    return to_wire(conn, evaluator.project_id, rows, scores=False), cursor


_JUDGE_PROMPT_TOKENS = 250  # a judge prompt's own words, around the input and output it quotes
_JUDGE_ANSWER_TOKENS = 80  # a score and a sentence or two of reasoning


def estimate(
    conn: Connection, project_id: int, filter: Mapping[str, Any] | None, model: str | None
) -> dict[str, Any]:
    """How many generations ``filter`` matches and, for a judge on ``model``, what asking about each
    would cost (their tokens quoted in a prompt, plus the judge's own words; null when the model's
    prices are unknown)."""
    g = t.generations
    n, tokens = conn.execute(
        select(func.count(), func.avg(g.c.total_tokens)).where(
            g.c.project_id == project_id, compile_filter(filter or {})
        )
    ).one()
    n, per_call = int(n or 0), int(tokens or 0) + _JUDGE_PROMPT_TOKENS
    cost = None
    if model is not None and n:
        one = price(model, None, per_call, _JUDGE_ANSWER_TOKENS)
        cost = None if one is None else round(one * n, 6)
    return {"generations": n, "model": model, "estimatedCost": cost, "currency": "USD"}


def get_evaluator(conn: Connection, project_id: int, ref: int | str) -> Evaluator:
    """The evaluator of the project with this id (an int or its digits) or name; NotFound if none."""
    if isinstance(ref, int) or ref.isdigit() and len(ref) < 10:
        row = conn.execute(select(e).where(e.c.project_id == project_id, e.c.id == int(ref))).first()
    else:
        row = None
    if row is None and isinstance(ref, str):
        row = conn.execute(select(e).where(e.c.project_id == project_id, e.c.name == ref)).first()
    if row is None:
        raise NotFound(f"no evaluator {ref!r} in this project")
    return _evaluator(row)


def definition_at(conn: Connection, evaluator_id: int, version: int) -> Mapping[str, Any] | None:
    """An evaluator's definition as it was at ``version``."""
    v = t.evaluator_versions
    row = conn.execute(select(v).where(v.c.evaluator_id == evaluator_id, v.c.version == version)).first()
    return None if row is None else {"type": row.type, "config": row.config, "scoreName": row.score_name}


def list_evaluators(conn: Connection, project_id: int) -> list[Evaluator]:
    """The project's evaluators, by name."""
    return [
        _evaluator(r) for r in conn.execute(select(e).where(e.c.project_id == project_id).order_by(e.c.name))
    ]


def online_evaluators(conn: Connection) -> list[Evaluator]:
    """Every evaluator of every project that evaluates new generations (enabled, with a filter)."""
    q = select(e).where(e.c.enabled.is_(True), e.c.filter.is_not(None)).order_by(e.c.id)
    return [ev for ev in map(_evaluator, conn.execute(q)) if ev.filter is not None]


def evaluator_stats(conn: Connection, project_id: int, evaluator_id: int, since_us: int) -> dict[str, Any]:
    """What an evaluator gave since ``since_us``: scores, failed evaluations, the average value and
    the labels' counts."""
    sc = t.scores
    mine = (sc.c.evaluator_id == evaluator_id, sc.c.project_id == project_id, sc.c.ts_us >= since_us)
    totals = conn.execute(
        select(
            func.count(),
            func.sum(case((sc.c.error.is_not(None), 1), else_=0)),
            func.avg(sc.c.value),
        ).where(*mine)
    ).one()
    labels = conn.execute(
        select(sc.c.label, func.count()).where(*mine, sc.c.label.is_not(None)).group_by(sc.c.label)
    ).all()
    count, errors = int(totals[0] or 0), int(totals[1] or 0)
    return {
        "evaluations": count,
        "errors": errors,
        "errorRate": errors / count if count else None,
        "average": totals[2],
        "labels": {label: int(n) for label, n in labels},
    }


def recent_results(conn: Connection, project_id: int, evaluator_id: int, limit: int = 20) -> list[Any]:
    """The evaluator's latest scores (and failures), newest first, as rows of ``scores``."""
    sc = t.scores
    q = (
        select(sc)
        .where(sc.c.evaluator_id == evaluator_id, sc.c.project_id == project_id)
        .order_by(sc.c.id.desc())
        .limit(limit)
    )
    return list(conn.execute(q))
