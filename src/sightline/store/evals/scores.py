"""Scores: recorded through the writer, with the latest per name and the hourly totals kept beside them.

A score row is kept for every judgement ever given (the history). Beside it the writer keeps, in
the same transaction:

- ``score_latest``: the newest score of each name on each generation (the one received last), which
  filters (``scores.<name>``), sorts and aggregates read with one index lookup;
- ``rollup_scores``: per hour of the score's time, how many scores of each name came, the sum of
  their values, how many had a label and how many evaluations failed: the analytics trends.

Human feedback is a score too: every feedback's ``rating``, ``score`` and ``thumbs`` are recorded
as the scores ``feedback.rating`` (1-5), ``feedback.score`` (0-1) and ``feedback.thumbs`` (1 up,
0 down, labelled), source ``human`` (:func:`feedback_scores`), written with the feedback itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select

from ...schema import Score
from .. import tables as t
from ..engine.dialect import upsert, upsert_add
from ..generations.reads.analytics import Window
from ..generations.records import Scope, iso, to_us
from ..generations.rollups import HOUR_US

__all__ = [
    "FEEDBACK_SCORES",
    "RecordScores",
    "ScoreTrend",
    "feedback_scores",
    "latest_run_scores",
    "latest_scores",
    "score_history",
    "score_row",
    "score_trends",
    "score_wire",
    "write_scores",
]

FEEDBACK_SCORES = ("feedback.rating", "feedback.score", "feedback.thumbs")
_LATEST_COLUMNS = ("project_id", "generation_id", "name", "value", "label", "score_id")
_ROLLUP_COLUMNS = ("project_id", "environment", "hour_us", "name", "count", "total", "labelled", "errors")
_CHUNK = 500


def score_row(
    score: Score,
    scope: Scope,
    *,
    error: str | None = None,
    body: Mapping[str, Any] | None = None,
    evaluator_id: int | None = None,
) -> dict[str, Any]:
    """The ``scores`` row of ``score`` written with ``scope``'s key."""
    return {
        "project_id": scope.project_id,
        "environment": scope.environment,
        "generation_id": score.generation_id,
        "run_id": score.run_id,
        "name": score.name,
        "value": score.value,
        "label": score.label,
        "comment": score.comment,
        "source": score.source,
        "evaluator_id": evaluator_id,
        "evaluator_version": score.evaluator_version,
        "error": error,
        "ts_us": to_us(score.timestamp),
        "body": {"evaluator": score.evaluator, **(body or {})} if score.evaluator else dict(body or {}),
    }


def feedback_scores(feedback: Mapping[str, Any], environment: str) -> list[dict[str, Any]]:
    """The score rows of one ``feedback`` row (``records.feedback_row``): one per judgement it holds."""
    rows = []
    judgements = (
        ("feedback.rating", feedback["rating"], None),
        ("feedback.score", feedback["score"], None),
        (
            "feedback.thumbs",
            None if feedback["thumbs"] is None else float(feedback["thumbs"] == "up"),
            feedback["thumbs"],
        ),
    )
    body = feedback.get("body") or {}
    for name, value, label in judgements:
        if value is None:
            continue
        rows.append(
            {
                "project_id": feedback["project_id"],
                "environment": environment,
                "generation_id": feedback["generation_id"],
                "run_id": None,
                "name": name,
                "value": float(value),
                "label": label,
                "comment": body.get("comment"),
                "source": "human",
                "evaluator_id": None,
                "evaluator_version": None,
                "error": None,
                "ts_us": feedback["ts_us"],
                "body": {"userId": feedback["user_id"]} if feedback.get("user_id") else {},
            }
        )
    return rows


def write_scores(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Insert score ``rows`` (``score_row``) and keep the latest and the totals; answers their ids."""
    if not rows:
        return []
    ids = [
        int(i)
        for i in conn.execute(
            insert(t.scores).returning(t.scores.c.id, sort_by_parameter_order=True), list(rows)
        ).scalars()
    ]
    latest: dict[tuple[int, str, str], tuple[Any, ...]] = {}
    totals: dict[tuple[int, str, int, str], list[Any]] = {}
    for score_id, row in zip(ids, rows, strict=True):
        failed = row["error"] is not None
        if row["generation_id"] is not None and not failed:
            key = (row["project_id"], row["generation_id"], row["name"])
            latest[key] = (*key, row["value"], row["label"], score_id)  # the later in the batch wins
        at = (row["project_id"], row["environment"], row["ts_us"] - row["ts_us"] % HOUR_US, row["name"])
        total = totals.setdefault(at, [0, 0.0, 0, 0])
        if failed:
            total[3] += 1
            continue
        if row["value"] is not None:
            total[0] += 1
            total[1] += row["value"]
        if row["label"] is not None:
            total[2] += 1
    if latest:
        upsert(
            conn,
            t.score_latest,
            list(latest.values()),
            update=["value", "label", "score_id"],
            columns=_LATEST_COLUMNS,
        )
    upsert_add(
        conn,
        t.rollup_scores,
        [(*at, *total) for at, total in totals.items()],
        ("count", "total", "labelled", "errors"),
        _ROLLUP_COLUMNS,
    )
    return ids


@dataclass(slots=True)
class RecordScores:
    """Record scores (``score_row`` rows); answers, for each, whether its generation or run is
    already there (a score may come before it, and counts once it does)."""

    rows: list[dict[str, Any]]
    size: int = 1

    def apply(self, conn: Connection) -> list[bool]:
        write_scores(conn, self.rows)
        return _targets_exist(conn, self.rows)


def _targets_exist(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> list[bool]:
    found: set[tuple[str, int, str]] = set()
    for kind, table in (("generation_id", t.generations), ("run_id", t.runs)):
        wanted: dict[int, set[str]] = {}
        for row in rows:
            if row[kind] is not None:
                wanted.setdefault(row["project_id"], set()).add(row[kind])
        for project_id, ids in wanted.items():
            listed = sorted(ids)
            for i in range(0, len(listed), _CHUNK):
                chunk = listed[i : i + _CHUNK]
                q = select(table.c.id).where(table.c.project_id == project_id, table.c.id.in_(chunk))
                found.update((kind, project_id, r) for r in conn.execute(q).scalars())
    return [
        (
            kind := "generation_id" if row["generation_id"] is not None else "run_id",
            row["project_id"],
            row[kind],
        )
        in found
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class ScoreTrend:
    """One score name over a window's buckets: how many scores had a value, their average, and how
    many evaluations failed, per bucket."""

    name: str
    counts: list[int]
    averages: list[float | None]
    errors: list[int]


def score_trends(
    conn: Connection, project_id: int, w: Window, environment: str | None = None, limit: int = 8
) -> list[ScoreTrend]:
    """The scores given in ``w`` (by the hour they were given, from ``rollup_scores``), the ``limit``
    names with the most scores first."""
    r = t.rollup_scores
    start = w.start_us - w.start_us % HOUR_US
    q = select(r.c.hour_us, r.c.name, r.c["count"], r.c.total, r.c.errors).where(
        r.c.project_id == project_id, r.c.hour_us >= start, r.c.hour_us < w.end_us
    )
    if environment is not None:
        q = q.where(r.c.environment == environment)
    found: dict[str, tuple[list[int], list[float], list[int]]] = {}
    for hour, name, count, total, errors in conn.execute(q):
        index = min(max(0, (hour - w.start_us) // w.bucket_us), w.count - 1)
        counts, totals, failed = found.setdefault(name, ([0] * w.count, [0.0] * w.count, [0] * w.count))
        counts[index] += int(count)
        totals[index] += float(total)
        failed[index] += int(errors)
    ranked = sorted(found.items(), key=lambda item: -sum(item[1][0]))[:limit]
    return [
        ScoreTrend(
            name,
            counts,
            [total / n if n else None for total, n in zip(totals, counts, strict=True)],
            failed,
        )
        for name, (counts, totals, failed) in ranked
    ]


def score_wire(row: Any) -> dict[str, Any]:
    """A score as the API shows it (camelCase, its time as ISO 8601)."""
    body = row.body or {}
    out: dict[str, Any] = {
        "id": row.id,
        "name": row.name,
        "value": row.value,
        "label": row.label,
        "comment": row.comment,
        "source": row.source,
        "timestamp": iso(row.ts_us),
    }
    if row.generation_id is not None:
        out["generationId"] = row.generation_id
    if row.run_id is not None:
        out["runId"] = row.run_id
    if row.evaluator_id is not None:
        out["evaluatorId"] = row.evaluator_id
        out["evaluatorVersion"] = row.evaluator_version
    if body.get("evaluator"):
        out["evaluator"] = body["evaluator"]
    if body.get("judgeGenerationId"):
        out["judgeGenerationId"] = body["judgeGenerationId"]
    if row.error is not None:
        out["error"] = row.error
    return out


def latest_scores(
    conn: Connection, project_id: int, generation_ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """``{generation id: {score name: its latest score}}`` of the generations that have scores."""
    ids = sorted(set(generation_ids))
    out: dict[str, dict[str, Any]] = {}
    sc, sl = t.scores, t.score_latest
    for i in range(0, len(ids), _CHUNK):
        q = (
            select(sc)
            .join(sl, sl.c.score_id == sc.c.id)
            .where(sl.c.project_id == project_id, sl.c.generation_id.in_(ids[i : i + _CHUNK]))
        )
        for row in conn.execute(q):
            out.setdefault(row.generation_id, {})[row.name] = score_wire(row)
    return out


def score_history(
    conn: Connection,
    project_id: int,
    *,
    generation_id: str | None = None,
    run_id: str | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Every score of one generation or run (failed evaluations too), oldest first."""
    sc = t.scores
    q = select(sc).where(sc.c.project_id == project_id)
    q = (
        q.where(sc.c.generation_id == generation_id)
        if generation_id is not None
        else q.where(sc.c.run_id == run_id)
    )
    return [score_wire(r) for r in conn.execute(q.order_by(sc.c.id).limit(limit))]


def latest_run_scores(conn: Connection, project_id: int, run_id: str) -> dict[str, dict[str, Any]]:
    """The latest score of each name on a run."""
    out: dict[str, dict[str, Any]] = {}
    for score in score_history(conn, project_id, run_id=run_id):
        if "error" not in score:
            out[score["name"]] = score
    return out
