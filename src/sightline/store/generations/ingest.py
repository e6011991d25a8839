"""Write operations for ingestion, applied by the writer thread inside grouped transactions.

Each operation is built (validated, priced, flattened to rows) on the caller's side; ``apply``
does only the database work. Writing a generation id that exists in the project is a no-op (reported
as such); ids are the client's and unique per project, so another project's records are never seen.
A run owns its ``userId`` and metadata: they are copied onto every generation of the run (the
``user_id`` column and the metadata index), so generations are filtered by them directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update

from ...errors import InvalidInput
from ...schema import Feedback, Generation, Run
from .. import tables as t
from ..engine.dialect import insert_ignore, select_in, upsert
from ..engine.writer import WriteOp
from ..evals.scores import feedback_scores, write_scores
from ..tables.generations import GenerationColumn as G
from .records import Scope, feedback_row, generation_rows, metadata_rows, run_row, run_wide
from .rollups import add_generations, move_users
from .search import document
from .search import index as index_documents
from .sequence import number_rows

__all__ = ["AddFeedback", "InsertGenerations", "UpsertRun", "prepare_generation"]

_CHUNK = 500  # ids per IN (...) list


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i : i + _CHUNK]


@dataclass(slots=True)
class PreparedGeneration:
    row: list[Any]  # in tables.GENERATION_COLUMNS order (records.generation_rows)
    meta: dict[str, Any] | None  # the custom metadata of a generation in a run: the run's joins in later
    prompt: tuple[Any, ...] | None  # in tables.PROMPT_COLUMNS order
    feedback: dict[str, Any] | None
    meta_rows: list[tuple[Any, ...]]  # of a generation outside a run
    document: str  # its search document (search.py), made here rather than on the writer


def prepare_generation(gen: Generation, scope: Scope) -> PreparedGeneration:
    """Check a generation against the rules the schema cannot express, and flatten it to rows."""
    if gen.run_id is not None and "userId" in gen.metadata:
        raise InvalidInput(
            "metadata.userId: a generation in a run cannot set userId; it belongs to the run "
            "(send the run with its userId)",
            field="metadata.userId",
        )
    row, prompt = generation_rows(gen, scope)
    doc = document(
        {"input": gen.input, "output": gen.output, "template": gen.template, "metadata": gen.metadata}
    )
    fb = feedback_row(gen.feedback, gen.id, scope.project_id) if gen.feedback is not None else None
    meta = gen.metadata
    if "userId" in meta:
        meta = {k: v for k, v in meta.items() if k != "userId"}
    if gen.run_id is not None:
        return PreparedGeneration(row, meta, prompt, fb, [], doc)
    meta_rows = metadata_rows(gen.id, scope.project_id, row[_TS], meta)
    return PreparedGeneration(row, None, prompt, fb, meta_rows, doc)


def _existing_ids(conn: Connection, project_id: int, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    # The project is a number of our own (never the client's text): written into the statement.
    sql = f"SELECT id FROM generations WHERE project_id = {int(project_id)} AND id IN ({{in}})"
    for chunk in _chunks(ids):
        found.update(row[0] for row in select_in(conn, sql, chunk))
    return found


def _load_runs(conn: Connection, project_id: int, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    runs: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(run_ids):
        q = select(t.runs).where(t.runs.c.project_id == project_id, t.runs.c.id.in_(chunk))
        runs.update({r.id: dict(r._mapping) for r in conn.execute(q)})
    return runs


def _propagate_run(conn: Connection, run: dict[str, Any]) -> None:
    """Copy a run's userId and metadata onto every generation of the run (and move its user totals)."""
    _propagate_runs(conn, [run])


_STEP_COLUMNS = ("id", "project_id", "environment", "ts_us", "user_id", "cost", "total_tokens", "run_id")


def _propagate_runs(conn: Connection, runs: Sequence[dict[str, Any]]) -> None:
    """:func:`_propagate_run` for several runs of one project: their generations read with one query a
    chunk of runs, their metadata rows written with one statement."""
    if not runs:
        return
    gens = t.generations
    project_id = int(runs[0]["project_id"])
    # Plain driver SQL (select_in), with the run index named on SQLite: with IN, its planner (no
    # statistics) walked the whole project by another index instead (a batch of 20 runs: 10x slower).
    hint = " INDEXED BY ix_generations_run_id" if conn.dialect.name == "sqlite" else ""
    sql = (
        f"SELECT {', '.join(_STEP_COLUMNS)} FROM generations{hint} "
        f"WHERE project_id = {project_id} AND run_id IN ({{in}})"
    )
    steps_of: dict[str, list[dict[str, Any]]] = {}
    for chunk in _chunks([run["id"] for run in runs]):
        for row in select_in(conn, sql, chunk):
            step = dict(zip(_STEP_COLUMNS, row, strict=True))
            steps_of.setdefault(step["run_id"], []).append(step)
    rows = []
    for run in runs:
        steps = steps_of.get(run["id"], [])
        if any(step["user_id"] != run["user_id"] for step in steps):
            move_users(conn, steps, run["user_id"])
            conn.execute(
                update(gens)
                .where(gens.c.project_id == project_id, gens.c.run_id == run["id"])
                .values(user_id=run["user_id"])
            )
        metadata = run_wide(run["body"].get("metadata") or {})  # runs stored before OWN_KEYS held them
        for step in steps:
            rows.extend(metadata_rows(step["id"], project_id, step["ts_us"], metadata))
    upsert(conn, t.generation_metadata, rows, update=["value"], columns=t.METADATA_COLUMNS)


def _latest_feedback(
    conn: Connection, project_id: int, ids: Sequence[str]
) -> dict[str, tuple[Any, Any, Any]]:
    """The latest feedback that arrived before its generation, by generation id: (rating, score, thumbs).

    The latest is the one received last (the highest id), whatever timestamp its client gave it."""
    latest: dict[str, tuple[Any, Any, Any]] = {}
    sql = (
        "SELECT generation_id, rating, score, thumbs FROM feedback "
        f"WHERE project_id = {int(project_id)} AND generation_id IN ({{in}}) ORDER BY id"
    )
    for chunk in _chunks(ids):
        for gen_id, rating, score, thumbs in select_in(conn, sql, chunk):
            latest[gen_id] = (rating, score, thumbs)
    return latest


# Positions in a generations row, named by the table's GenerationColumn and bound once here: looking a
# member up on the enum costs ~0.3 µs, ten times the indexing itself.
_ID, _TS, _USER, _RUN, _STATUS, _SEQ = (int(c) for c in (G.id, G.ts_us, G.user_id, G.run_id, G.status, G.seq))
_FEEDBACK = (int(G.feedback_rating), int(G.feedback_score), int(G.feedback_thumbs))
# What InsertGenerations holds per generation (lists that a merge joins).
_PER_GENERATION = ("documents", "feedback", "meta", "meta_counts", "meta_rows", "prompts", "rows")


class InsertGenerations:
    """Insert generations of one project; answers, per generation, whether it was new.

    What can be worked out before the transaction is, on the thread that builds the operation (a
    request's): the rows and their metadata rows. The writer, which every write waits for, is left
    the database work and the rollup totals of what it inserted. (The totals were made here once;
    with the writer in a process of its own, the request's thread had become the busier of the two.)

    The generations are held column-wise, as the statements take them: their rows as lists (in
    ``tables.GENERATION_COLUMNS`` order, the body as JSON text), and beside them, one entry per
    generation, what the writer may need (the custom metadata of a generation in a run, the feedback
    sent with it, how many metadata rows it has). Lists of plain values are also what pickles
    cheaply: the operation travels so to a writer process.
    """

    __slots__ = (
        "_merged",
        "documents",
        "feedback",
        "meta",
        "meta_counts",
        "meta_rows",
        "prompts",
        "rows",
        "scope",
        "size",
    )

    def __init__(self, scope: Scope, items: Sequence[PreparedGeneration]) -> None:
        self.scope = scope
        self.rows: list[list[Any]] = []
        self.meta: list[dict[str, Any] | None] = []  # of a generation in a run
        self.feedback: list[dict[str, Any] | None] = []
        self.meta_counts: list[int] = []
        self.meta_rows: list[tuple[Any, ...]] = []  # of the generations outside runs
        self.documents: list[str] = []  # search documents (search.py)
        prompts: dict[tuple[str, str], tuple[Any, ...]] = {}
        for p in items:
            self.rows.append(p.row)
            self.meta.append(p.meta)
            self.feedback.append(p.feedback)
            self.meta_counts.append(len(p.meta_rows))
            self.meta_rows.extend(p.meta_rows)
            self.documents.append(p.document)
            if p.prompt is not None:
                prompts[p.prompt[1:3]] = p.prompt
        self.prompts = list(prompts.values())
        self.size = len(self.rows)
        self._merged = False  # made by merge, and so the writer's own

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InsertGenerations) and all(
            getattr(self, name) == getattr(other, name) for name in ("scope", "size", *_PER_GENERATION)
        )

    def merge(self, other: WriteOp) -> InsertGenerations | None:
        """The generations of both, when ``other`` inserts generations of the same project and environment.

        The first merge makes a new operation, and the merges after it extend that one in place (only
        the writer holds it): merging n queued operations costs n, not n squared.
        """
        if not isinstance(other, InsertGenerations) or other.scope != self.scope:
            return None
        merged = self
        if not self._merged:
            merged = InsertGenerations(self.scope, [])
            merged._merged = True
            merged._extend(self)
        merged._extend(other)
        return merged

    def _extend(self, other: InsertGenerations) -> None:
        for name in _PER_GENERATION:
            getattr(self, name).extend(getattr(other, name))
        self.size += other.size

    def apply(self, conn: Connection) -> list[bool]:
        rows = self.rows
        ids = [row[_ID] for row in rows]
        pid = self.scope.project_id
        existing = _existing_ids(conn, pid, ids)
        created: list[bool] = []
        for gen_id in ids:
            is_new = gen_id not in existing
            created.append(is_new)
            existing.add(gen_id)  # the same id twice in one batch: the first wins
        new = [i for i, ok in enumerate(created) if ok]
        if not new:
            return created
        feedback_rows = [f for i in new if (f := self.feedback[i]) is not None]
        if feedback_rows:
            conn.execute(t.feedback.insert(), feedback_rows)
            write_scores(conn, [s for f in feedback_rows for s in feedback_scores(f, self.scope.environment)])
        pending = _latest_feedback(conn, pid, [ids[i] for i in new])
        run_ids = sorted({rows[i][_RUN] for i in new if rows[i][_RUN]})
        runs = _load_runs(conn, pid, run_ids) if run_ids else {}
        changed: dict[str, dict[str, Any]] = {}
        run_meta_rows: list[tuple[Any, ...]] = []
        for i in new:
            row = rows[i]
            if row[_ID] in pending:
                for at, value in zip(_FEEDBACK, pending[row[_ID]], strict=True):
                    row[at] = value
            run_id = row[_RUN]
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
                        "started_us": row[_TS],
                        "ended_us": None,
                        "body": {"metadata": {}},
                    }
                if row[_STATUS] == "error":  # a failed step fails its run
                    run["body"]["failedSteps"] = run["body"].get("failedSteps", 0) + 1
                    run["status"] = "error"
                    changed[run_id] = run
                meta = self.meta[i] or {}
                run_meta = run["body"].setdefault("metadata", {})
                custom = {k: v for k, v in run_wide(meta).items() if run_meta.get(k) != v}
                if custom:
                    run_meta.update(custom)
                    changed[run_id] = run
                row[_USER] = run["user_id"]
                run_meta_rows.extend(metadata_rows(row[_ID], pid, row[_TS], {**meta, **run_wide(run_meta)}))
        if len(new) < len(rows):
            rows = [rows[i] for i in new]
        number_rows(conn, rows)  # last before the insert: numbering waits for other writers' commits
        inserted = insert_ignore(conn, t.generations, rows, returning="id", columns=t.GENERATION_COLUMNS)
        if inserted is not None and len(inserted) < len(rows):
            # Another server process wrote some of these ids since this transaction looked: its copy stands.
            created = [ok and gen_id in inserted for ok, gen_id in zip(created, ids, strict=True)]
            rows = [row for row in rows if row[_ID] in inserted]
        add_generations(conn, rows, self.scope.key_id)
        documents = {ids[i]: self.documents[i] for i in new}
        index_documents(conn, [(row[_SEQ], documents[row[_ID]]) for row in rows])
        meta_rows = self._meta_rows_of(created) + run_meta_rows
        insert_ignore(conn, t.generation_metadata, meta_rows, columns=t.METADATA_COLUMNS)
        insert_ignore(conn, t.prompt_versions, self.prompts, columns=t.PROMPT_COLUMNS)
        if changed:
            upsert(conn, t.runs, list(changed.values()), update=["body", "status"])
            for run in changed.values():
                _propagate_run(conn, run)
        return created

    def _meta_rows_of(self, created: list[bool]) -> list[tuple[Any, ...]]:
        """The metadata rows of the generations outside runs that were written."""
        if all(created):
            return self.meta_rows
        rows, start = [], 0
        for ok, count in zip(created, self.meta_counts, strict=True):
            if ok:
                rows.extend(self.meta_rows[start : start + count])
            start += count
        return rows


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
    for key in ("steps", "error", "output"):
        if key in new["body"]:
            body[key] = new["body"][key]
    merged["body"] = body
    if merged["status"] == "ok" and body.get("failedSteps"):
        merged["status"] = "error"  # a model call of it failed: the run did, whatever it reports
    return merged


@dataclass(slots=True)
class UpsertRuns:
    """Create runs of one project, or merge newer reports of them; copy each one's userId and metadata to
    its generations. Answers, per run given, whether it was new. The runs are read with one query and
    written with one statement (a batch of traces or runs is many of them); a run given twice is merged
    in the order given."""

    scope: Scope
    runs: list[Run]
    size: int = 1

    def apply(self, conn: Connection) -> list[bool]:
        if not self.runs:
            return []
        old = _load_runs(conn, self.scope.project_id, list({run.id: None for run in self.runs}))
        current = dict(old)
        created = []
        for run in self.runs:
            before = current.get(run.id)
            created.append(before is None)
            current[run.id] = _merge_run(before, run_row(run, self.scope))
        merged = list({run.id: current[run.id] for run in self.runs}.values())
        for columns in {tuple(row) for row in merged}:  # rows alike in their columns go in one statement
            alike = [row for row in merged if tuple(row) == columns]
            upsert(conn, t.runs, alike, update=[c for c in columns if c not in ("project_id", "id")])
        changed = [
            row
            for row in merged
            if (was := old.get(row["id"])) is None
            or was["user_id"] != row["user_id"]
            or was["body"].get("metadata") != row["body"].get("metadata")
        ]
        _propagate_runs(conn, changed)
        return created


@dataclass(slots=True)
class UpsertRun:
    """Create a run, or merge a newer report of it; copy its userId and metadata to its generations."""

    scope: Scope
    run: Run
    size: int = 1

    def apply(self, conn: Connection) -> bool:
        return UpsertRuns(self.scope, [self.run]).apply(conn)[0]


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
        write_scores(conn, feedback_scores(row, self.scope.environment))
        gens = t.generations
        result = conn.execute(
            update(gens)
            .where(gens.c.id == self.generation_id, gens.c.project_id == self.scope.project_id)
            .values(feedback_rating=row["rating"], feedback_score=row["score"], feedback_thumbs=row["thumbs"])
        )
        return bool(result.rowcount)
