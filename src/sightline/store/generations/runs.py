"""Reading runs, each with its steps (model calls and other steps) in order."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from ...errors import InvalidInput, NotFound
from .. import tables as t
from ..evals.scores import latest_run_scores
from .queries import Page, to_wire
from .records import iso

__all__ = ["get_run", "list_runs"]

r_ = t.runs


def _run_wire(row: Mapping[Any, Any], step_count: int | None = None) -> dict[str, Any]:
    body = row["body"] or {}
    run: dict[str, Any] = {
        "id": row["id"],
        "environment": row["environment"],
        "pipelineSlug": row["pipeline_slug"],
        "userId": row["user_id"],
        "metadata": body.get("metadata") or {},
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


def list_runs(
    conn: Connection,
    project_id: int,
    *,
    user_id: str | None = None,
    pipeline_slug: str | None = None,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page:
    """Runs of a project, newest first, with how many model calls each made."""
    q = select(r_).where(r_.c.project_id == project_id)
    if user_id:
        q = q.where(r_.c.user_id == user_id)
    if pipeline_slug:
        q = q.where(r_.c.pipeline_slug == pipeline_slug)
    if status:
        q = q.where(r_.c.status == status)
    if cursor:
        ts, run_id = _cursor(cursor)
        q = q.where(or_(r_.c.started_us < ts, and_(r_.c.started_us == ts, r_.c.id < run_id)))
    rows = conn.execute(q.order_by(r_.c.started_us.desc(), r_.c.id.desc()).limit(limit + 1)).all()
    more, rows = len(rows) > limit, rows[:limit]
    counts: dict[str, int] = {}
    if rows:
        g = t.generations
        cq = (
            select(g.c.run_id, func.count())
            .where(g.c.project_id == project_id, g.c.run_id.in_([r.id for r in rows]))
            .group_by(g.c.run_id)
        )
        counts = {run_id: n for run_id, n in conn.execute(cq)}
    next_cursor = None
    if more and rows:
        next_cursor = (
            base64.urlsafe_b64encode(f"{rows[-1].started_us}|{rows[-1].id}".encode()).decode().rstrip("=")
        )
    return Page([_run_wire(r._mapping, counts.get(r.id, 0)) for r in rows], next_cursor)


def get_run(conn: Connection, project_id: int, run_id: str) -> dict[str, Any]:
    """One run with ``steps``: its generations and its other steps, in step order (then time)."""
    row = conn.execute(select(r_).where(r_.c.project_id == project_id, r_.c.id == run_id)).first()
    if row is None:
        raise NotFound(f"no run {run_id!r} in this project")
    g = t.generations
    gen_rows = conn.execute(select(g).where(g.c.project_id == project_id, g.c.run_id == run_id)).all()
    steps: list[tuple[tuple[int, str], dict[str, Any]]] = []
    for gen in to_wire(conn, project_id, [x._mapping for x in gen_rows]):
        index = gen.get("stepIndex")
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
