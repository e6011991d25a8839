"""Backups as gzip JSON lines: one ``{"table", "row"}`` a line, the same on SQLite and PostgreSQL.

A backup of a SQLite database restores into PostgreSQL and back, so moving a team from the
default file to a server is ``backup`` on one and ``restore`` on the other.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, select

from ...errors import InvalidInput
from .. import tables as t
from .dialect import advance_sequences, insert_ignore

__all__ = ["dump", "load"]

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


def dump(engine: Engine, file: Path) -> int:
    """Write every row of every table to ``file``; answers how many rows."""
    count = 0
    with gzip.open(file, "wb") as out, engine.connect() as conn:
        for table in _ORDER:
            result = conn.execution_options(stream_results=True, yield_per=_BATCH).execute(select(table))
            for row in result:
                out.write(
                    orjson.dumps({"table": table.name, "row": row._asdict()}, option=orjson.OPT_NON_STR_KEYS)
                    + b"\n"
                )
                count += 1
    return count


def load(engine: Engine, file: Path) -> int:
    """Insert the rows of a backup (rows whose key exists are skipped); answers how many lines were read."""
    tables = {table.name: table for table in _ORDER}
    batch: list[dict[str, Any]] = []
    current = _ORDER[0]
    count = 0
    with gzip.open(file, "rb") as src, engine.begin() as conn:
        for number, line in enumerate(src, 1):
            try:
                item = orjson.loads(line)
                table = tables[item["table"]]
                row = item["row"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                raise InvalidInput(f"{file}: line {number} is not a Sightline backup line") from None
            # Tables come in dependency order: finish one before the next starts.
            if table is not current or len(batch) >= _BATCH:
                insert_ignore(conn, current, batch)
                batch, current = [], table
            batch.append(row)
            count += 1
        insert_ignore(conn, current, batch)
        advance_sequences(conn, _ORDER)
    return count
