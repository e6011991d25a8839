"""Write operations for ingestion, applied by the writer thread inside grouped transactions.

Each operation is built (validated, priced, flattened to rows) on the caller's side; ``apply``
does only the database work. Writing a generation id that exists is a no-op (reported as such).
A run owns its ``userId`` and metadata: they are copied onto every generation of the run (the
``user_id`` column and the metadata index), so generations are filtered by them directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, select, update

from ..errors import InvalidInput
from ..schema import Feedback, Generation, Run
from . import tables as t
from .dialect import RawJson, insert_ignore, select_in, upsert
from .records import Scope, feedback_row, generation_rows, metadata_rows, run_row
from .rollups import Totals, move_users
from .writer import WriteOp

__all__ = ["AddFeedback", "InsertGenerations", "UpsertRun", "prepare_generation"]

_CHUNK = 500  # ids per IN (...) list


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i : i + _CHUNK]


@dataclass(slots=True)
class PreparedGeneration:
    row: dict[str, Any]
    meta: dict[str, Any]
    prompt: dict[str, Any] | None
    feedback: dict[str, Any] | None
    meta_rows: list[dict[str, Any]]  # of a generation outside a run (a run's metadata joins in later)


def prepare_generation(gen: Generation, scope: Scope) -> PreparedGeneration:
    """Check a generation against the rules the schema cannot express, and flatten it to rows."""
    if gen.run_id is not None and "userId" in gen.metadata:
        raise InvalidInput(
            "metadata.userId: a generation in a run cannot set userId; it belongs to the run "
            "(send the run with its userId)",
            field="metadata.userId",
        )
    row, prompt = generation_rows(gen, scope)
    meta = {k: v for k, v in gen.metadata.items() if k != "userId"}
    fb = feedback_row(gen.feedback, gen.id, scope.project_id) if gen.feedback is not None else None
    meta_rows = metadata_rows(gen.id, scope.project_id, row["ts_us"], meta) if gen.run_id is None else []
    return PreparedGeneration(row, meta, prompt, fb, meta_rows)


def _existing_ids(conn: Connection, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(ids):
        found.update(
            row[0] for row in select_in(conn, "SELECT id FROM generations WHERE id IN ({in})", chunk)
        )
    return found


def _load_runs(conn: Connection, project_id: int, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    runs: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(run_ids):
        q = select(t.runs).where(t.runs.c.project_id == project_id, t.runs.c.id.in_(chunk))
        runs.update({r.id: dict(r._mapping) for r in conn.execute(q)})
    return runs


def _propagate_run(conn: Connection, run: dict[str, Any]) -> None:
    """Copy a run's userId and metadata onto every generation of the run (and move its user totals)."""
    gens = t.generations
    scope = and_(gens.c.project_id == run["project_id"], gens.c.run_id == run["id"])
    columns = (
        gens.c.id,
        gens.c.project_id,
        gens.c.environment,
        gens.c.ts_us,
        gens.c.user_id,
        gens.c.cost,
        gens.c.total_tokens,
    )
    steps = [r._mapping for r in conn.execute(select(*columns).where(scope))]
    if any(step["user_id"] != run["user_id"] for step in steps):
        move_users(conn, steps, run["user_id"])
        conn.execute(update(gens).where(scope).values(user_id=run["user_id"]))
    metadata = run["body"].get("metadata") or {}
    rows = []
    for step in steps:
        rows.extend(metadata_rows(step["id"], run["project_id"], step["ts_us"], metadata))
    upsert(conn, t.generation_metadata, rows, update=["value"])


def _latest_feedback(conn: Connection, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The latest feedback that arrived before its generation, by generation id."""
    latest: dict[str, dict[str, Any]] = {}
    sql = (
        "SELECT generation_id, rating, score, thumbs FROM feedback WHERE generation_id IN ({in}) "
        "ORDER BY ts_us, id"
    )
    for chunk in _chunks(ids):
        for gen_id, rating, score, thumbs in select_in(conn, sql, chunk):
            latest[gen_id] = {"feedback_rating": rating, "feedback_score": score, "feedback_thumbs": thumbs}
    return latest


@dataclass(slots=True)
class InsertGenerations:
    """Insert generations of one project; answers, per generation, whether it was new.

    Everything that can be worked out before the transaction is, on the thread that builds the
    operation (a request's): the rows, their metadata rows and their rollup totals. The writer,
    which every write waits for, is left the database work.
    """

    scope: Scope
    items: list[PreparedGeneration]
    size: int = 0
    # The rollup totals of the items outside runs (if all turn out new), one part per merged operation:
    # added up once, when applied.
    totals: list[Totals] | None = None

    def __post_init__(self) -> None:
        self.size = len(self.items)
        if self.totals is None:
            self.totals = [Totals.of(p.row for p in self.items if not p.row["run_id"])]

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as plain tuples and dicts (it travels to a writer process), the bodies as plain
        text: the dataclass and ``RawJson`` each cost a Python call per item to pickle (2.6 µs a
        generation to pickle this way, against 4.1 with them)."""
        return (_unpacked, (self.scope, _packed(self.items), self.totals))

    def merge(self, other: WriteOp) -> InsertGenerations | None:
        """The generations of both, when ``other`` inserts generations of the same project and environment."""
        if isinstance(other, InsertGenerations) and other.scope == self.scope:
            assert self.totals is not None and other.totals is not None
            return InsertGenerations(
                self.scope, [*self.items, *other.items], totals=[*self.totals, *other.totals]
            )
        return None

    def apply(self, conn: Connection) -> list[bool]:
        ids = [p.row["id"] for p in self.items]
        existing = _existing_ids(conn, ids)
        created: list[bool] = []
        new: list[PreparedGeneration] = []
        for p in self.items:
            is_new = p.row["id"] not in existing
            created.append(is_new)
            if is_new:
                existing.add(p.row["id"])  # the same id twice in one batch: the first wins
                new.append(p)
        if not new:
            return created
        pid = self.scope.project_id
        feedback_rows = [p.feedback for p in new if p.feedback is not None]
        if feedback_rows:
            conn.execute(t.feedback.insert(), feedback_rows)
        pending = _latest_feedback(conn, [p.row["id"] for p in new])
        run_ids = sorted({p.row["run_id"] for p in new if p.row["run_id"]})
        runs = _load_runs(conn, pid, run_ids) if run_ids else {}
        changed: dict[str, dict[str, Any]] = {}
        meta_rows: list[dict[str, Any]] = []
        for p in new:
            row = p.row
            if row["id"] in pending:
                row.update(pending[row["id"]])
            run_id = row["run_id"]
            if run_id:
                run = runs.get(run_id)
                if run is None:
                    run = runs[run_id] = changed[run_id] = {
                        "project_id": pid,
                        "id": run_id,
                        "environment": self.scope.environment,
                        "pipeline_slug": None,
                        "user_id": None,
                        "status": "running",
                        "started_us": row["ts_us"],
                        "ended_us": None,
                        "body": {"metadata": {}},
                    }
                run_meta = run["body"].setdefault("metadata", {})
                custom = {k: v for k, v in p.meta.items() if run_meta.get(k) != v}
                if custom:
                    run_meta.update(custom)
                    changed[run_id] = run
                row["user_id"] = run["user_id"]
                meta_rows.extend(metadata_rows(row["id"], pid, row["ts_us"], {**p.meta, **run_meta}))
            else:
                meta_rows.extend(p.meta_rows)
        rows = [p.row for p in new]
        inserted = insert_ignore(conn, t.generations, rows, returning="id")
        if inserted is not None and len(inserted) < len(rows):
            # Another server process wrote some of these ids since this transaction looked: its copy stands.
            lost = {r["id"] for r in rows} - inserted
            created = [ok and gen_id not in lost for ok, gen_id in zip(created, ids, strict=True)]
            rows = [r for r in rows if r["id"] in inserted]
        if len(rows) == len(self.items) and self.totals is not None:  # all new: the totals made beforehand
            parts = [*self.totals, Totals.of(r for r in rows if r["run_id"])] if run_ids else self.totals
            totals = Totals.sum(parts)
        else:
            totals = Totals.of(rows)
        totals.write(conn)
        insert_ignore(conn, t.generation_metadata, meta_rows)
        prompts = [p.prompt for p in new if p.prompt is not None]
        insert_ignore(conn, t.prompt_versions, list({(x["name"], x["version"]): x for x in prompts}.values()))
        if changed:
            upsert(conn, t.runs, list(changed.values()), update=["body"])
            for run in changed.values():
                _propagate_run(conn, run)
        return created


def _packed(items: list[PreparedGeneration]) -> tuple[Any, ...]:
    """``items`` as tuples of dicts, with the bodies as plain text: pickle's C code does the rest."""
    return tuple(
        (
            {**p.row, "body": str(p.row["body"])},
            p.meta,
            None if p.prompt is None else {**p.prompt, "body": str(p.prompt["body"])},
            p.feedback,
            p.meta_rows,
        )
        for p in items
    )


def _unpacked(scope: Scope, items: tuple[Any, ...], totals: list[Totals] | None) -> InsertGenerations:
    prepared = []
    for row, meta, prompt, feedback, meta_rows in items:
        row["body"] = RawJson(row["body"])
        if prompt is not None:
            prompt["body"] = RawJson(prompt["body"])
        prepared.append(PreparedGeneration(row, meta, prompt, feedback, meta_rows))
    return InsertGenerations(scope, prepared, totals=totals)


def _merge_run(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """A run sent again: metadata merges (the newest value per key wins), other fields update."""
    if old is None:
        return new
    merged = dict(old)
    for key in ("pipeline_slug", "user_id", "ended_us"):
        if new[key] is not None:
            merged[key] = new[key]
    merged["status"] = (
        new["status"] if new["status"] != "running" or old["status"] == "running" else old["status"]
    )
    merged["started_us"] = min(old["started_us"], new["started_us"])
    body = dict(old["body"])
    body["metadata"] = {**(old["body"].get("metadata") or {}), **(new["body"].get("metadata") or {})}
    for key in ("steps", "error"):
        if key in new["body"]:
            body[key] = new["body"][key]
    merged["body"] = body
    return merged


@dataclass(slots=True)
class UpsertRun:
    """Create a run, or merge a newer report of it; copy its userId and metadata to its generations."""

    scope: Scope
    run: Run
    size: int = 1

    def apply(self, conn: Connection) -> bool:
        new = run_row(self.run, self.scope)
        old = _load_runs(conn, self.scope.project_id, [self.run.id]).get(self.run.id)
        merged = _merge_run(old, new)
        upsert(conn, t.runs, [merged], update=[c for c in merged if c not in ("project_id", "id")])
        if (
            old is None
            or old["user_id"] != merged["user_id"]
            or old["body"].get("metadata") != merged["body"].get("metadata")
        ):
            _propagate_run(conn, merged)
        return old is None


@dataclass(slots=True)
class AddFeedback:
    """Store feedback on a generation; answers whether the generation is already there.

    Feedback whose generation has not arrived yet is kept and applied when it does.
    """

    scope: Scope
    generation_id: str
    feedback: Feedback
    size: int = 1

    def apply(self, conn: Connection) -> bool:
        row = feedback_row(self.feedback, self.generation_id, self.scope.project_id)
        conn.execute(t.feedback.insert(), [row])
        gens = t.generations
        result = conn.execute(
            update(gens)
            .where(gens.c.id == self.generation_id, gens.c.project_id == self.scope.project_id)
            .values(feedback_rating=row["rating"], feedback_score=row["score"], feedback_thumbs=row["thumbs"])
        )
        return bool(result.rowcount)
