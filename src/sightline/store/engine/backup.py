"""Backups, taken online (the server keeps running), in two formats:

- **SQLite file** (``.db``): SQLite's own online backup API copies the database page by page into a
  new file, from one read transaction held throughout: a consistent snapshot however much is written
  meanwhile, and writers never wait for it (WAL). Fast and exact; restores into SQLite.
- **JSON lines** (``.jsonl.gz``): one ``{"table", "row"}`` a line, the same on SQLite and PostgreSQL,
  read in one transaction (a consistent snapshot on PostgreSQL), with a last line counting the rows of
  each table. A backup of a SQLite database restores into PostgreSQL and back, so moving a team from
  the default file to a server is ``backup`` on one and ``restore`` on the other.

A restore refuses a database that already holds generations or projects unless told (``force``), and
checks afterwards that every table holds at least the rows the backup counted.
"""

from __future__ import annotations

import gzip
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, func, select

from ...errors import Conflict, InvalidInput
from .. import tables as t
from ..generations.search import backfill
from .dialect import advance_sequences, insert_ignore

__all__ = [
    "SQLITE_MAGIC",
    "dump",
    "is_sqlite_file",
    "load",
    "restore_sqlite",
    "sqlite_backup",
    "table_counts",
]

_ORDER = [
    t.projects,
    t.environments,
    t.api_keys,
    t.users,
    t.runs,
    t.generations,
    t.generation_metadata,
    t.feedback,
    t.prompt_versions,
    t.scores,
    t.score_latest,
    t.rollup_scores,
    t.evaluators,
    t.evaluator_versions,
    t.datasets,
    t.dataset_items,
    t.experiments,
    t.experiment_items,
]
_BATCH = 2000
SQLITE_MAGIC = b"SQLite format 3\x00"
Progress = Callable[[int], None]


def table_counts(engine: Engine) -> dict[str, int]:
    """Rows of each table a backup carries."""
    with engine.connect() as conn:
        return {
            table.name: int(conn.scalar(select(func.count()).select_from(table)) or 0) for table in _ORDER
        }


def dump(engine: Engine, file: Path, progress: Progress | None = None) -> int:
    """Write every row of every table to ``file`` (gzip JSON lines) from one snapshot; answers how many."""
    count = 0
    counts: dict[str, int] = {}
    with gzip.open(file, "wb") as out, engine.connect() as conn, conn.begin():
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        for table in _ORDER:
            result = conn.execution_options(stream_results=True, yield_per=_BATCH).execute(select(table))
            for row in result:
                out.write(
                    orjson.dumps({"table": table.name, "row": row._asdict()}, option=orjson.OPT_NON_STR_KEYS)
                    + b"\n"
                )
                count += 1
                counts[str(table.name)] = counts.get(str(table.name), 0) + 1
                if progress and count % _BATCH == 0:
                    progress(_BATCH)
        out.write(orjson.dumps({"counts": counts}) + b"\n")
    return count


def _refuse_filled(engine: Engine) -> None:
    with engine.connect() as conn:
        filled = any(
            conn.scalar(select(func.count()).select_from(table)) for table in (t.generations, t.projects)
        )
    if filled:
        raise Conflict(
            "the database already holds projects or generations: restore into an empty one, or force it"
        )


def load(engine: Engine, file: Path, progress: Progress | None = None, *, force: bool = False) -> int:
    """Insert the rows of a JSON-lines backup (rows whose key exists are skipped), then check the row
    counts; answers how many rows were read."""
    if not force:
        _refuse_filled(engine)
    tables = {table.name: table for table in _ORDER}
    batch: list[dict[str, Any]] = []
    current = _ORDER[0]
    count = 0
    expected: dict[str, int] | None = None
    with gzip.open(file, "rb") as src, engine.begin() as conn:
        for number, line in enumerate(src, 1):
            try:
                item = orjson.loads(line)
                if "counts" in item:
                    expected = dict(item["counts"])
                    continue
                table = tables[item["table"]]
                row = item["row"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                raise InvalidInput(f"{file}: line {number} is not a Sightline backup line") from None
            # Tables come in dependency order: finish one before the next starts.
            if table is not current or len(batch) >= _BATCH:
                insert_ignore(conn, current, batch)
                if progress:
                    progress(len(batch))
                batch, current = [], table
            batch.append(row)
            count += 1
        insert_ignore(conn, current, batch)
        advance_sequences(conn, _ORDER)
        backfill(conn)  # the search index is no table of the backup's: made again from the bodies
    if expected is not None:
        found = table_counts(engine)
        short = {name: (n, found.get(name, 0)) for name, n in expected.items() if found.get(name, 0) < n}
        if short:
            raise Conflict(f"restored fewer rows than the backup holds (table: backup, now): {short}")
    return count


def is_sqlite_file(file: Path) -> bool:
    with file.open("rb") as f:
        return f.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC


def _sqlite_path(engine: Engine) -> str:
    if engine.dialect.name != "sqlite" or not engine.url.database or engine.url.database == ":memory:":
        raise InvalidInput(
            "a SQLite-file backup is of a SQLite database: use the JSON-lines format (.jsonl.gz)"
        )
    return engine.url.database


def sqlite_backup(engine: Engine, file: Path, progress: Progress | None = None, pages: int = 4096) -> int:
    """Copy the SQLite database to ``file`` with SQLite's online backup API; answers the pages copied."""
    source = sqlite3.connect(_sqlite_path(engine), timeout=30, isolation_level=None)
    target = sqlite3.connect(str(file))
    copied = 0
    # One read transaction held for the whole copy: every step reads the same snapshot (WAL lets
    # writers go on meanwhile). Without it, a write by another connection between two steps starts
    # the copy over, and under steady ingest a large file's copy never ends.
    source.execute("BEGIN")
    source.execute("SELECT count(*) FROM sqlite_master").fetchall()

    def step(status: int, remaining: int, total: int) -> None:
        nonlocal copied
        if progress:
            progress(total - remaining - copied)
        copied = total - remaining

    try:
        # A few thousand pages a step, for the progress bar.
        source.backup(target, pages=pages, progress=step)
    finally:
        target.close()
        source.execute("COMMIT")
        source.close()
    return copied


def restore_sqlite(engine: Engine, file: Path, *, force: bool = False) -> dict[str, int]:
    """Replace the SQLite database with a SQLite-file backup (online API); answers the row counts."""
    path = _sqlite_path(engine)
    if not force:
        _refuse_filled(engine)
    engine.dispose()
    source = sqlite3.connect(str(file))
    target = sqlite3.connect(path, timeout=30)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()
    return table_counts(engine)
