"""The few statements that SQLite and PostgreSQL spell differently. Nowhere else branches on dialect.

The writer's statements go to the driver's cursor under SQLAlchemy (a fast path: docs/fast-paths.md
says why, ``bench/bench_fast_paths.py --only store`` measures it against SQLAlchemy's own statements,
and ``tests/test_fast_paths.py`` checks they store the same rows).
"""

from __future__ import annotations

import functools
import itertools
import json
import operator
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any, cast

import orjson
from sqlalchemy import JSON, Connection, Table

__all__ = [
    "advance_sequences",
    "insert_ignore",
    "json_text",
    "no_nul",
    "select_in",
    "upsert",
    "upsert_add",
]

# Rows to insert: dicts (all with the same keys), or sequences of values in the order of a ``columns``
# argument whose JSON columns hold their JSON text already (see :func:`_execute_values`).
Rows = Sequence[Mapping[str, Any]] | Sequence[Sequence[Any]]


def json_text(value: Any) -> str:
    """The JSON text of a value for a JSON column: the engine's serializer, and how dict rows bind here."""
    try:
        return no_nul(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode())
    except orjson.JSONEncodeError:
        # An integer past 64 bits in free-form content a client sent (a run step's inputs): the standard
        # library writes it (read back, it is a float, as in a generation's record).
        return no_nul(json.dumps(value, separators=(",", ":"), default=str))


def no_nul(text: str) -> str:
    """JSON text with each escaped NUL character made U+FFFD: PostgreSQL's JSONB refuses NUL, and a
    record must not be lost for one stray control character in a model's output."""
    return text.replace("\\u0000", "\\ufffd") if "\\u0000" in text else text


def _max_params(conn: Connection) -> int:
    """How many parameters one statement may take (PostgreSQL: 65,535; SQLite: 32,766 since 3.32)."""
    if conn.dialect.name == "postgresql":
        return 60_000
    return 32_766 if sqlite3.sqlite_version_info >= (3, 32) else 999


def _execute_values(
    conn: Connection,
    table: Table,
    rows: Rows,
    tail: str,
    returning: str | None = None,
    columns: Sequence[str] | None = None,
) -> list[Any]:
    """``INSERT INTO table (columns) VALUES (…), (…), … tail`` for ``rows``. Answers the
    ``returning`` column's values.

    ``rows`` are dicts (all with the same keys), or, with ``columns``, sequences of values in that
    order whose JSON columns hold their JSON text already (:func:`json_text`): ingest builds its
    rows so, as they are cheaper to build and to send to a writer process.

    Rows go to the driver as they are (JSON columns serialised here), skipping SQLAlchemy's per-row
    parameter processing, and many rows make one statement: one round trip to PostgreSQL (where
    executemany would run the statement once a row), and one call into SQLite, which releases the
    GIL and must take it back once per call (executemany does so once a row, and on a busy server
    each time waits for the event loop's thread).
    """
    if columns is None:
        columns = tuple(rows[0])
        get = operator.itemgetter(*columns) if len(columns) > 1 else lambda row: (row[columns[0]],)
        json_at = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, JSON)]
        values: Sequence[Sequence[Any]] = [get(row) for row in rows]
        if json_at:
            values = [list(one) for one in values]
            for one in values:
                for i in json_at:
                    one[i] = json_text(one[i])  # type: ignore[index]
    else:
        values = rows  # type: ignore[assignment]
    names = ", ".join(f'"{c}"' for c in columns)
    per_statement = max(1, _max_params(conn) // len(columns))
    suffix = f'{tail} RETURNING "{returning}"' if returning else tail
    answered: list[Any] = []
    cursor, numbered = _cursor(conn)
    try:
        for start in range(0, len(values), per_statement):
            chunk = values[start : start + per_statement]
            params = tuple(itertools.chain.from_iterable(chunk))
            marks = _marks(numbered, len(chunk), len(columns))
            cursor.execute(f'INSERT INTO "{table.name}" ({names}) VALUES {marks} {suffix}', params)
            if returning:
                answered.extend(r[0] for r in cursor.fetchall())
    finally:
        cursor.close()
    return answered


def _cursor(conn: Connection) -> tuple[Any, bool]:
    """A cursor of the driver's connection under ``conn`` (in ``conn``'s transaction), and whether it
    takes numbered placeholders (:func:`_marks`).

    The writer's statements go to it straight: SQLAlchemy's own execution (result objects, events,
    exception wrapping) costs about as much as SQLite takes to run a small statement.
    On PostgreSQL it is psycopg's ``RawCursor``, which takes PostgreSQL's own ``$1`` placeholders
    (:func:`_marks`) and sends the text as it is: psycopg's usual cursor rewrites each ``%s``
    statement in Python, which for a statement of many rows (whose text is new whenever the row count
    is) cost more than PostgreSQL took to run it.
    """
    if conn.dialect.driver == "psycopg":
        import psycopg  # here, not at the top: SQLite processes (the CLI, a writer) need not load it

        return psycopg.RawCursor(cast("psycopg.Connection[Any]", conn.connection.driver_connection)), True
    return conn.connection.cursor(), False


@functools.lru_cache(maxsize=64)
def _marks(numbered: bool, rows: int, width: int) -> str:
    """The placeholders of ``rows`` rows of ``width`` values: ``(?, ?), (?, ?)``, or ``numbered`` (for
    psycopg's ``RawCursor``) ``($1, $2), ($3, $4)``."""
    if not numbered:
        one = "(" + ", ".join(["?"] * width) + ")"
        return ", ".join([one] * rows)
    numbers = iter(range(1, rows * width + 1))
    return ", ".join("(" + ", ".join(f"${next(numbers)}" for _ in range(width)) + ")" for _ in range(rows))


def insert_ignore(
    conn: Connection,
    table: Table,
    rows: Rows,
    returning: str | None = None,
    columns: Sequence[str] | None = None,
) -> set[Any] | None:
    """Insert ``rows`` (dicts, or sequences in the order of ``columns``: see :func:`_execute_values`),
    silently skipping any whose primary key is there.

    With ``returning`` (a column name), PostgreSQL answers the values of that column for the rows
    it really inserted: under READ COMMITTED another process may have written some of them since
    this transaction looked. SQLite answers ``None``: its writers are serialised (a transaction that
    read before another committed cannot write), so every row not seen before was inserted.
    """
    postgresql = conn.dialect.name == "postgresql"
    if not rows:
        return set() if returning and postgresql else None
    found = _execute_values(
        conn, table, rows, "ON CONFLICT DO NOTHING", returning if postgresql else None, columns
    )
    return set(found) if returning and postgresql else None


def upsert(
    conn: Connection,
    table: Table,
    rows: Rows,
    update: Sequence[str],
    columns: Sequence[str] | None = None,
) -> None:
    """Insert ``rows`` (dicts, or sequences in the order of ``columns``; no two with the same primary
    key); where the primary key exists, overwrite ``update``."""
    _on_conflict(conn, table, rows, {c: f'excluded."{c}"' for c in update}, columns)


def upsert_add(
    conn: Connection,
    table: Table,
    rows: Rows,
    add: Sequence[str],
    columns: Sequence[str] | None = None,
) -> None:
    """Insert ``rows`` (dicts, or sequences in the order of ``columns``; no two with the same primary
    key); where the primary key exists, add their ``add`` columns."""
    _on_conflict(conn, table, rows, {c: f'"{table.name}"."{c}" + excluded."{c}"' for c in add}, columns)


def _on_conflict(
    conn: Connection,
    table: Table,
    rows: Rows,
    sets: dict[str, str],
    columns: Sequence[str] | None = None,
) -> None:
    """``INSERT … ON CONFLICT (primary key) DO UPDATE SET column = expression`` for every row.

    Runs with write batches (rollups, runs, metadata): written here rather than with SQLAlchemy's
    ``ON CONFLICT`` construct, whose building cost more than the whole insert of the generations.
    """
    if not rows:
        return
    keys = ", ".join(f'"{c.name}"' for c in table.primary_key.columns)
    assignments = ", ".join(f'"{c}" = {expression}' for c, expression in sets.items())
    _execute_values(conn, table, rows, f"ON CONFLICT ({keys}) DO UPDATE SET {assignments}", columns=columns)


def advance_sequences(conn: Connection, tables: Sequence[Table]) -> None:
    """After rows were inserted with explicit ids, move PostgreSQL's id sequences past them.

    (SQLite takes the next id from the table itself and needs nothing.)
    """
    if conn.dialect.name != "postgresql":
        return
    for table in tables:
        column = table.c.get("id")
        if column is None or column.autoincrement is not True:
            continue
        conn.exec_driver_sql(
            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
            f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"
        )


def select_in(conn: Connection, sql: str, values: Sequence[Any]) -> list[Any]:
    """Rows of ``sql`` (a SELECT whose ``{in}`` is filled with one placeholder per value).

    Built as plain driver SQL: SQLAlchemy's expanding ``IN`` recompiles the statement for every
    new list length, which cost more than the query itself on the ingest path.

    On PostgreSQL the statement is never prepared: psycopg prepares a statement after its fifth run,
    and PostgreSQL may then keep a generic plan made while the table was still empty. For the ids
    already stored (``project_id = 1 AND id IN (...)``) that plan walked every row of the project
    (an index condition on ``project_id`` alone) until the table was next analysed: batch ingest fell
    from ~4,000 to ~800 generations/s on a new database.
    """
    cursor, numbered = _cursor(conn)
    try:
        marks = _marks(numbered, 1, len(values))[1:-1]
        if numbered:
            cursor.execute(sql.format(**{"in": marks}), tuple(values), prepare=False)
        else:
            cursor.execute(sql.format(**{"in": marks}), tuple(values))
        return list(cursor.fetchall())
    finally:
        cursor.close()
