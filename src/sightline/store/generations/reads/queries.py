"""Reading generations: newest-first cursor pages, one record, and records as the API shows them.

Pages are chosen by a MongoDB-style filter, compiled by the one query compiler (``store.mongo``);
query strings are parsed into such filters in ``server/``, not here.

A run's ``userId`` and metadata have one truth: the run's row. The writer keeps a derived copy on
each generation of the run (the ``user_id`` column and the ``generation_metadata`` rows) so that
filters on them use the indexes; records are completed from the run's row when they are read, and
list rows (:func:`list_rows`) read the ``user_id`` column, which the writer keeps equal to it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, and_, or_, select

from ....errors import InvalidInput, NotFound
from ... import tables as t
from ...evals.scores import latest_scores
from ...mongo.filter import compile_filter
from ..records import iso, run_wide
from ..search import plan_searches
from .ordering import NEWEST, Ordering

__all__ = [
    "Context",
    "Page",
    "context",
    "decode_cursor",
    "encode_cursor",
    "get_generation",
    "list_generations",
    "list_rows",
    "to_wire",
]

g = t.generations


def encode_cursor(ts_us: int, gen_id: str) -> str:
    """The opaque cursor of the page after the row at ``(ts_us, gen_id)``."""
    return base64.urlsafe_b64encode(f"{ts_us}|{gen_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """``(ts_us, id)`` of a cursor from :func:`encode_cursor`; InvalidInput naming ``cursor`` if not."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts, gen_id = text.split("|", 1)
        return int(ts), gen_id
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidInput(
            "cursor is not valid: pass the nextCursor of a previous page", field="cursor"
        ) from None


@dataclass
class Page:
    data: list[dict[str, Any]]
    next_cursor: str | None
    # The cursor of the first row (list_rows): read in the reversed order, it gives the page before.
    first_cursor: str | None = None


def page_query(
    filter: Mapping[str, Any] | None,
    project_id: int,
    limit: int,
    cursor: str | None,
    columns: Sequence[Any] = (g,),
    order: Ordering = NEWEST,
) -> Select[Any]:
    """Newest first (then by id), or in ``order``, starting after ``cursor``: keyset pagination, fast at
    any depth."""
    q = select(*columns).where(g.c.project_id == project_id, compile_filter(filter or {}))
    if not order.is_default:
        q = q.where(order.after(cursor)) if cursor else q
        return q.order_by(*order.terms()).limit(limit + 1)
    if cursor:
        ts, gen_id = decode_cursor(cursor)
        q = q.where(or_(g.c.ts_us < ts, and_(g.c.ts_us == ts, g.c.id < gen_id)))
    return q.order_by(g.c.ts_us.desc(), g.c.id.desc()).limit(limit + 1)


def _page(
    conn: Connection, query: Select[Any], limit: int, order: Ordering = NEWEST
) -> tuple[list[Any], str | None]:
    rows = list(conn.execute(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, order.cursor(rows[-1]._mapping) if more and rows else None


def list_generations(
    conn: Connection,
    project_id: int,
    filter: Mapping[str, Any] | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page:
    """A page of whole records matching the MongoDB-style ``filter``, newest first."""
    filter = plan_searches(conn, filter)
    rows, next_cursor = _page(conn, page_query(filter, project_id, limit, cursor), limit)
    return Page(to_wire(conn, project_id, [r._mapping for r in rows]), next_cursor)


_LIST_COLUMNS = (
    g.c.id,
    g.c.ts_us,
    g.c.model_id,
    g.c.template_name,
    g.c.template_version,
    g.c.user_id,
    g.c.status,
    g.c.error_type,
    g.c.prompt_tokens,
    g.c.completion_tokens,
    g.c.total_tokens,
    g.c.cost,
    g.c.latency_ms,
    g.c.ttft_ms,
    g.c.cache_hit,
    g.c.feedback_rating,
    g.c.feedback_score,
    g.c.feedback_thumbs,
    g.c.run_id,
    g.c.chat_id,
    # The one part of the record a list shows that has no column, taken out by the database.
    g.c.body[("output", "content")].label("output_content"),
)


def list_rows(
    conn: Connection,
    project_id: int,
    filter: Mapping[str, Any] | None = None,
    limit: int = 50,
    cursor: str | None = None,
    order: Ordering = NEWEST,
) -> Page:
    """A page of list rows: the fields a table of generations shows, read from their columns (not from
    each record's JSON), shaped as in records (``model.id``, ``usage.cost``, ``metadata.userId``, …),
    in ``order`` (newest first by default)."""
    query = page_query(plan_searches(conn, filter), project_id, limit, cursor, _LIST_COLUMNS, order)
    rows, next_cursor = _page(conn, query, limit, order)
    ctx = context(conn, project_id, [r._mapping for r in rows], runs=False)
    first = order.cursor(rows[0]._mapping) if rows else None
    return Page([_list_row(r._mapping, ctx) for r in rows], next_cursor, first)


def _list_row(row: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": row["id"],
        "timestamp": iso(row["ts_us"]),
        "model": {"id": row["model_id"]},
        "template": {"name": row["template_name"], "version": row["template_version"]},
        "metadata": {"userId": row["user_id"]},
        "status": row["status"],
        "error": {"type": row["error_type"]} if row["error_type"] else None,
        "usage": {
            "promptTokens": row["prompt_tokens"],
            "completionTokens": row["completion_tokens"],
            "totalTokens": row["total_tokens"],
            "cost": row["cost"],
        },
        "performance": {"latency": row["latency_ms"], "timeToFirstToken": row["ttft_ms"]},
        "cacheHit": bool(row["cache_hit"]),
        "runId": row["run_id"],
        "chatId": row["chat_id"],
        "output": {"content": row["output_content"]},
    }
    if row["id"] in ctx.feedback:
        record["feedback"] = ctx.feedback[row["id"]]
    if row["id"] in ctx.scores:
        record["scores"] = ctx.scores[row["id"]]
    return record


def get_generation(conn: Connection, project_id: int, gen_id: str) -> dict[str, Any]:
    """One record of the project, as the API shows it; NotFound if the project has no such id."""
    row = conn.execute(select(g).where(g.c.id == gen_id, g.c.project_id == project_id)).first()
    if row is None:
        raise NotFound(f"no generation {gen_id!r} in this project")
    return to_wire(conn, project_id, [row._mapping])[0]


@dataclass
class Context:
    """What a page of rows needs besides their bodies: their runs, latest feedback and latest scores."""

    runs: dict[str, Any]
    feedback: dict[str, Any]
    scores: dict[str, dict[str, Any]]

    def overlay(self, row: Mapping[Any, Any], body: dict[str, Any]) -> dict[str, Any]:
        """``body`` completed with its environment, its run's userId and metadata, its feedback."""
        body["environment"] = row["environment"]
        run = self.runs.get(row["run_id"]) if row["run_id"] else None
        if run is not None:
            meta = {**body.get("metadata", {}), **run_wide(run.body.get("metadata") or {})}
            if run.user_id:
                meta["userId"] = run.user_id
            body["metadata"] = meta
        if row["id"] in self.feedback:
            body["feedback"] = self.feedback[row["id"]]
        if row["id"] in self.scores:
            body["scores"] = self.scores[row["id"]]
        return body


def context(
    conn: Connection,
    project_id: int,
    rows: Sequence[Mapping[Any, Any]],
    *,
    runs: bool = True,
    scores: bool = True,
) -> Context:
    """The runs (unless ``runs`` is false), latest feedback and latest scores of ``rows`` (three
    queries at most)."""
    run_ids = sorted({r["run_id"] for r in rows if r["run_id"]}) if runs else []
    found: dict[str, Any] = {}
    if run_ids:
        q = select(t.runs.c.id, t.runs.c.user_id, t.runs.c.body).where(
            t.runs.c.project_id == project_id, t.runs.c.id.in_(run_ids)
        )
        found = {r.id: r for r in conn.execute(q)}
    feedback: dict[str, Any] = {}
    # Every row's: a feedback of only a comment or a better response sets none of the columns.
    with_feedback = [r["id"] for r in rows]
    if with_feedback:
        fb = t.feedback
        q = (
            select(fb.c.generation_id, fb.c.body)
            .where(fb.c.project_id == project_id, fb.c.generation_id.in_(with_feedback))
            .order_by(fb.c.id)  # the latest is the one received last, whatever its client's timestamp
        )
        feedback = {r.generation_id: r.body for r in conn.execute(q)}
    latest = latest_scores(conn, project_id, [r["id"] for r in rows]) if scores else {}
    shown = {gen_id: {name: _shown_score(s) for name, s in named.items()} for gen_id, named in latest.items()}
    return Context(found, feedback, shown)


def _shown_score(score: dict[str, Any]) -> dict[str, Any]:
    """A latest score as a record shows it (its generation is the record's own)."""
    score.pop("generationId", None)
    return score


def to_wire(
    conn: Connection, project_id: int, rows: Sequence[Mapping[Any, Any]], *, scores: bool = True
) -> list[dict[str, Any]]:
    """Records as the API returns them: the stored body, its run's userId and metadata, latest feedback
    and (unless ``scores`` is false) latest scores."""
    if not rows:
        return []
    ctx = context(conn, project_id, rows, scores=scores)
    return [ctx.overlay(r, dict(r["body"])) for r in rows]
