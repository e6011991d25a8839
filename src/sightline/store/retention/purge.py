"""Deleting and anonymising generations with everything that hangs on them, in bounded batches.

Each operation takes at most a batch of ids (the callers take 500 at a time), so the single writer is
never held for long and ingest goes on between batches. What goes with a generation:

- deleted: its metadata rows, feedback, scores (history and latest), and the dataset items taken
  from it when ``with_datasets`` (an erasure); runs left without generations are deleted by the
  caller's run step (:class:`DeleteRuns`). The hourly totals (rollups) keep the hours as they were
  counted: analytics of past months stay true after their rows are gone.
- anonymised: the input and output content, alternatives and template parameters are dropped from
  the record, feedback loses its comment and better response, scores their comments; ids, model,
  tokens, cost, timings, status, metadata keys and score values stay, so every total stays the same.

Either way the search index (``generations/search.py``) follows in the same transaction: a deleted
generation's document goes, an anonymised one is indexed again without its content.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, select, update

from .. import tables as t
from ..generations.search import document, forget, index

__all__ = [
    "ANONYMISED",
    "AnonymiseGenerations",
    "DeleteGenerations",
    "DeleteRuns",
    "PurgeCache",
    "anonymised_body",
]

ANONYMISED = "[anonymised]"
_CHUNK = 500
g = t.generations


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i : i + _CHUNK]


def _count(result: Any) -> int:
    return int(result.rowcount or 0)


@dataclass(slots=True)
class DeleteGenerations:
    """Delete generations of one project (by id) and what hangs on them; answers the counts."""

    project_id: int
    ids: list[str]
    with_datasets: bool = False
    size: int = 1

    def apply(self, conn: Connection) -> dict[str, int]:
        counts = {"generations": 0, "metadata": 0, "feedback": 0, "scores": 0, "datasetItems": 0}
        pid = self.project_id
        for ids in _chunks(self.ids):
            gm, fb, sc, sl = t.generation_metadata, t.feedback, t.scores, t.score_latest
            counts["metadata"] += _count(
                conn.execute(delete(gm).where(gm.c.project_id == pid, gm.c.generation_id.in_(ids)))
            )
            counts["feedback"] += _count(
                conn.execute(delete(fb).where(fb.c.project_id == pid, fb.c.generation_id.in_(ids)))
            )
            conn.execute(delete(sl).where(sl.c.project_id == pid, sl.c.generation_id.in_(ids)))
            counts["scores"] += _count(
                conn.execute(delete(sc).where(sc.c.project_id == pid, sc.c.generation_id.in_(ids)))
            )
            forget(conn, pid, ids)
            if self.with_datasets:
                di, d = t.dataset_items, t.datasets
                mine = select(d.c.id).where(d.c.project_id == pid).scalar_subquery()
                counts["datasetItems"] += _count(
                    conn.execute(
                        delete(di).where(di.c.dataset_id.in_(mine), di.c.source_generation_id.in_(ids))
                    )
                )
            counts["generations"] += _count(
                conn.execute(delete(g).where(g.c.project_id == pid, g.c.id.in_(ids)))
            )
        return counts


@dataclass(slots=True)
class DeleteRuns:
    """Delete runs of one project: those of ``user_id`` (an erasure), or those that started before
    ``before_us`` and have no generation left (retention), with their scores; answers how many."""

    project_id: int
    before_us: int | None = None
    user_id: str | None = None
    environment: str | None = None
    size: int = 1

    def apply(self, conn: Connection) -> int:
        r, sc = t.runs, t.scores
        conds = [r.c.project_id == self.project_id]
        if self.user_id is not None:
            conds.append(r.c.user_id == self.user_id)
        if self.before_us is not None:
            conds.append(r.c.started_us < self.before_us)
            has_generations = (
                select(g.c.id).where(g.c.project_id == r.c.project_id, g.c.run_id == r.c.id).exists()
            )
            conds.append(~has_generations)
        if self.environment is not None:
            conds.append(r.c.environment == self.environment)
        ids = list(conn.execute(select(r.c.id).where(*conds).limit(5000)).scalars())
        removed = 0
        for chunk in _chunks(ids):
            conn.execute(delete(sc).where(sc.c.project_id == self.project_id, sc.c.run_id.in_(chunk)))
            removed += _count(
                conn.execute(delete(r).where(r.c.project_id == self.project_id, r.c.id.in_(chunk)))
            )
        return removed


def anonymised_body(body: dict[str, Any]) -> dict[str, Any]:
    """A generation record without its content (see the module's text)."""
    out = dict(body)
    if isinstance(out.get("input"), dict):
        out["input"] = {**out["input"], "content": ANONYMISED}
    if isinstance(out.get("output"), dict):
        output = {**out["output"], "content": ANONYMISED}
        output.pop("alternatives", None)
        out["output"] = output
    if isinstance(out.get("template"), dict):
        template = dict(out["template"])
        template.pop("params", None)
        out["template"] = template
    if isinstance(out.get("error"), dict) and out["error"].get("message"):
        out["error"] = {**out["error"], "message": ""}
    out.pop("feedback", None)
    return out


@dataclass(slots=True)
class AnonymiseGenerations:
    """Drop the content of generations of one project (by id), of their feedback and of their scores'
    comments; answers how many generations were changed (one already anonymised is left as it is)."""

    project_id: int
    ids: list[str]
    size: int = 1

    def apply(self, conn: Connection) -> dict[str, int]:
        pid, changed, feedback = self.project_id, 0, 0
        for ids in _chunks(self.ids):
            rows = conn.execute(
                select(g.c.id, g.c.seq, g.c.body).where(g.c.project_id == pid, g.c.id.in_(ids))
            ).all()
            updates, documents = [], []
            for row in rows:
                body = dict(row.body or {})
                if (body.get("input") or {}).get("content") == ANONYMISED:
                    continue
                updates.append({"gid": row.id, "new_body": anonymised_body(body)})
                documents.append((row.seq, document(updates[-1]["new_body"])))
            if updates:
                index(conn, documents)
                statement = (
                    update(g)
                    .where(and_(g.c.project_id == pid, g.c.id == bindparam("gid")))
                    .values(body=bindparam("new_body"))
                )
                conn.execute(statement, updates)
                changed += len(updates)
            fb = t.feedback
            kept = conn.execute(
                select(fb.c.id, fb.c.body).where(fb.c.project_id == pid, fb.c.generation_id.in_(ids))
            ).all()
            cleaned = [
                {
                    "fid": r.id,
                    "new_body": {
                        k: v for k, v in (r.body or {}).items() if k not in ("comment", "betterResponse")
                    },
                }
                for r in kept
                if {"comment", "betterResponse"} & set(r.body or {})
            ]
            if cleaned:
                conn.execute(
                    update(fb).where(fb.c.id == bindparam("fid")).values(body=bindparam("new_body")), cleaned
                )
                feedback += len(cleaned)
            sc = t.scores
            conn.execute(
                update(sc)
                .where(sc.c.project_id == pid, sc.c.generation_id.in_(ids), sc.c.comment.is_not(None))
                .values(comment=None)
            )
        return {"generations": changed, "feedback": feedback}


@dataclass(slots=True)
class PurgeCache:
    """Delete a project's cached gateway answers stored before ``before_us``; answers how many."""

    project_id: int
    before_us: int
    size: int = 1

    def apply(self, conn: Connection) -> int:
        c = t.gateway_cache
        return _count(
            conn.execute(delete(c).where(c.c.project_id == self.project_id, c.c.created_us < self.before_us))
        )
