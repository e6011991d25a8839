"""Reading runs, each with its steps (model calls and other steps) in order."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, func, or_, select

from ....errors import InvalidInput, NotFound
from ... import tables as t
from ...evals.scores import latest_run_scores, score_wire
from ..records import OWN_KEYS, iso, run_wide
from ..search import containing
from .queries import Page, to_wire

__all__ = ["RunTotals", "get_run", "list_runs", "run_totals"]

r_ = t.runs
_CHUNK = 500  # ids in one IN (...) list


@dataclass(frozen=True, slots=True)
class RunTotals:
    """What the runs a filter matches add up to: how many of how many, their model calls' cost and tokens."""

    matched: int
    of: int
    cost: float
    tokens: int


def _run_wire(row: Mapping[Any, Any], step_count: int | None = None) -> dict[str, Any]:
    body = row["body"] or {}
    run: dict[str, Any] = {
        "id": row["id"],
        "environment": row["environment"],
        "pipelineSlug": row["pipeline_slug"],
        "userId": row["user_id"],
        "metadata": run_wide(body.get("metadata") or {}),
        "startedAt": iso(row["started_us"]),
        "endedAt": iso(row["ended_us"]) if row["ended_us"] is not None else None,
        "status": row["status"],
    }
    if "error" in body:
        run["error"] = body["error"]
    if "output" in body:
        run["output"] = body["output"]
    if row["ended_us"] is not None:
        run["duration"] = (row["ended_us"] - row["started_us"]) / 1000
    if step_count is not None:
        run["stepCount"] = step_count
    return run


def _cursor(value: str) -> tuple[int, str]:
    try:
        ts, run_id = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode().split("|", 1)
        return int(ts), run_id
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidInput(
            "cursor is not valid: pass the nextCursor of a previous page", field="cursor"
        ) from None


def _where(
    project_id: int,
    environment: str | None,
    user_id: str | None,
    pipeline_slug: str | None,
    status: str | None,
    q: str | None = None,
) -> list[ColumnElement[bool]]:
    cond = [r_.c.project_id == project_id]
    if q:  # runs holding a model call that matches the words (search.py)
        cond.append(r_.c.id.in_(containing("run_id", project_id, q)))
    if environment:
        cond.append(r_.c.environment == environment)
    if user_id:
        cond.append(r_.c.user_id == user_id)
    if pipeline_slug:
        cond.append(r_.c.pipeline_slug == pipeline_slug)
    if status:
        cond.append(r_.c.status == status)
    return cond


def _step_sums(
    conn: Connection, project_id: int, run_ids: Sequence[str]
) -> dict[str, tuple[int, float | None, int]]:
    """``{run id: (model calls, cost or None when none was priced, tokens)}``, one grouped query."""
    g = t.generations
    out: dict[str, tuple[int, float | None, int]] = {}
    for i in range(0, len(run_ids), _CHUNK):
        q = (
            select(g.c.run_id, func.count(), func.sum(g.c.cost), func.sum(g.c.total_tokens))
            .where(g.c.project_id == project_id, g.c.run_id.in_(run_ids[i : i + _CHUNK]))
            .group_by(g.c.run_id)
        )
        for run_id, n, cost, tokens in conn.execute(q):
            out[run_id] = (int(n), float(cost) if cost is not None else None, int(tokens or 0))
    return out


def _latest_scores(conn: Connection, project_id: int, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{run id: {score name: its latest score}}`` (evaluations that failed left out), one query."""
    sc = t.scores
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(run_ids), _CHUNK):
        q = (
            select(sc)
            .where(
                sc.c.project_id == project_id, sc.c.run_id.in_(run_ids[i : i + _CHUNK]), sc.c.error.is_(None)
            )
            .order_by(sc.c.id)
        )
        for row in conn.execute(q):
            out.setdefault(row.run_id, {})[row.name] = score_wire(row)
    return out


def _encode(row: Any) -> str:
    return base64.urlsafe_b64encode(f"{row.started_us}|{row.id}".encode()).decode().rstrip("=")


def list_runs(
    conn: Connection,
    project_id: int,
    *,
    environment: str | None = None,
    user_id: str | None = None,
    pipeline_slug: str | None = None,
    status: str | None = None,
    q: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    before: str | None = None,
) -> Page:
    """Runs of a project, newest first, each with how many model calls it made, their cost and tokens,
    and its latest scores (``scores``, when it has any).

    Pages go forwards (older) from ``cursor`` and backwards (newer) from ``before``. Read forwards, a
    page's ``next_cursor`` is the ``cursor`` of the page after it (None at the end) and its
    ``first_cursor`` the ``before`` of the page before it. Read backwards, ``next_cursor`` is the
    ``before`` of the page before it (None at the newest) and ``first_cursor`` the ``cursor`` of the
    page after it."""
    query = select(r_).where(*_where(project_id, environment, user_id, pipeline_slug, status, q))
    newest_first = (r_.c.started_us.desc(), r_.c.id.desc())
    if before:
        ts, run_id = _cursor(before)
        query = query.where(or_(r_.c.started_us > ts, and_(r_.c.started_us == ts, r_.c.id > run_id)))
        rows = conn.execute(query.order_by(r_.c.started_us, r_.c.id).limit(limit + 1)).all()
        more, rows = len(rows) > limit, rows[:limit][::-1]
    else:
        if cursor:
            ts, run_id = _cursor(cursor)
            query = query.where(or_(r_.c.started_us < ts, and_(r_.c.started_us == ts, r_.c.id < run_id)))
        rows = conn.execute(query.order_by(*newest_first).limit(limit + 1)).all()
        more, rows = len(rows) > limit, rows[:limit]
    ids = [r.id for r in rows]
    sums = _step_sums(conn, project_id, ids) if ids else {}
    scores = _latest_scores(conn, project_id, ids) if ids else {}
    data = []
    for r in rows:
        calls, cost, tokens = sums.get(r.id, (0, None, 0))
        run = _run_wire(r._mapping, calls)
        run["cost"], run["tokens"] = cost, tokens
        if r.id in scores:
            run["scores"] = scores[r.id]
        data.append(run)
    if before:
        return Page(data, _encode(rows[0]) if more and rows else None, _encode(rows[-1]) if rows else None)
    return Page(data, _encode(rows[-1]) if more and rows else None, _encode(rows[0]) if rows else None)


def run_totals(
    conn: Connection,
    project_id: int,
    *,
    environment: str | None = None,
    user_id: str | None = None,
    pipeline_slug: str | None = None,
    status: str | None = None,
    q: str | None = None,
) -> RunTotals:
    """How many runs match (of the project's, in ``environment``), and the cost and tokens of their model
    calls: two counts and one sum over the generations of the matching runs (the run id index)."""
    matched_q = (
        select(func.count())
        .select_from(r_)
        .where(*_where(project_id, environment, user_id, pipeline_slug, status, q))
    )
    of_q = select(func.count()).select_from(r_).where(*_where(project_id, environment, None, None, None))
    matched = int(conn.scalar(matched_q) or 0)
    of = int(conn.scalar(of_q) or 0) if (user_id or pipeline_slug or status or q) else matched
    g = t.generations
    wanted = select(r_.c.id).where(*_where(project_id, environment, user_id, pipeline_slug, status, q))
    cost, tokens = conn.execute(
        select(func.coalesce(func.sum(g.c.cost), 0.0), func.coalesce(func.sum(g.c.total_tokens), 0)).where(
            g.c.project_id == project_id, g.c.run_id.in_(wanted)
        )
    ).one()
    return RunTotals(matched, of, float(cost or 0.0), int(tokens or 0))


def get_run(conn: Connection, project_id: int, run_id: str) -> dict[str, Any]:
    """One run with ``steps``: its generations and its other steps, in step order (then time)."""
    row = conn.execute(select(r_).where(r_.c.project_id == project_id, r_.c.id == run_id)).first()
    if row is None:
        raise NotFound(f"no run {run_id!r} in this project")
    g = t.generations
    gen_rows = conn.execute(select(g).where(g.c.project_id == project_id, g.c.run_id == run_id)).all()
    steps: list[tuple[tuple[int, str], dict[str, Any]]] = []
    for own, gen in zip(gen_rows, to_wire(conn, project_id, [x._mapping for x in gen_rows]), strict=True):
        index = gen.get("stepIndex")
        # Its place in a trace (its own metadata: OWN_KEYS), as steps give theirs.
        own_meta = (own.body or {}).get("metadata") or {}
        for key in sorted(OWN_KEYS):
            value = own_meta.get(key)
            value = value.get("value") if isinstance(value, dict) else value
            if isinstance(value, str) and value:
                gen[key] = value
        steps.append(
            (
                (index if index is not None else 1 << 30, gen["timestamp"]),
                {"kind": "generation", "stepIndex": index, **gen},
            )
        )
    for step in (row.body or {}).get("steps") or []:
        index = step.get("stepIndex")
        steps.append(
            ((index if index is not None else 1 << 30, step.get("startedAt") or ""), {"kind": "step", **step})
        )
    steps.sort(key=lambda pair: pair[0])
    run = _run_wire(row._mapping, len(gen_rows))
    run["steps"] = [s for _, s in steps]
    scores = latest_run_scores(conn, project_id, run_id)
    if scores:
        run["scores"] = scores
    return run
