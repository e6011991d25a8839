"""The few statements that SQLite and PostgreSQL spell differently. Nowhere else branches on dialect."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import JSON, Connection, Table, bindparam
from sqlalchemy.dialects import postgresql, sqlite

__all__ = ["RawJson", "advance_sequences", "insert_ignore", "json_text", "select_in", "upsert", "upsert_add"]


class RawJson(str):
    """JSON already serialised (e.g. by pydantic in Rust): stored as it is, not encoded again."""


def json_text(value: Any) -> str:
    """The JSON text of a value for a JSON column (the engine's serializer, and the fast path below).

    An escaped NUL character becomes U+FFFD: PostgreSQL's JSONB refuses NUL, and a record must not be
    lost for one stray control character in a model's output.
    """
    text = (
        str(value)
        if isinstance(value, RawJson)
        else orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    )
    return text.replace("\\u0000", "\\ufffd") if "\\u0000" in text else text


# (dialect, table, columns) -> (SQL text, parameter order for positional paramstyles)
_compiled: dict[tuple[str, str, tuple[str, ...]], tuple[str, tuple[str, ...] | None]] = {}


def _insert(conn: Connection, table: Table) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


def insert_ignore(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], returning: str | None = None
) -> set[Any] | None:
    """Insert ``rows`` (all with the same keys), silently skipping any whose primary key is there.

    This is the ingest hot path, so rows go to the driver as they are (JSON columns serialised
    here), skipping SQLAlchemy's per-row parameter processing, which cost more than SQLite's own
    work. SQLite takes them through executemany of one statement compiled once per column set;
    PostgreSQL through multi-row ``VALUES`` (one round trip and one plan for hundreds of rows,
    where executemany would execute the statement once a row).

    With ``returning`` (a column name), PostgreSQL answers the values of that column for the rows
    it really inserted: under READ COMMITTED another process may have written some of them since
    this transaction looked. SQLite answers ``None``: its writers are serialised (a transaction that
    read before another committed cannot write), so every row not seen before was inserted.
    """
    if not rows:
        return set() if returning and conn.dialect.name == "postgresql" else None
    columns = tuple(rows[0])
    if conn.dialect.name == "postgresql":
        return _insert_values(conn, table, columns, rows, returning)
    key = (conn.dialect.name, table.name, columns)
    hit = _compiled.get(key)
    if hit is None:
        stmt = _insert(conn, table).on_conflict_do_nothing().values({c: bindparam(c) for c in columns})
        compiled = stmt.compile(dialect=conn.dialect)
        hit = _compiled[key] = (
            str(compiled),
            tuple(compiled.positiontup or ()) if compiled.positional else None,
        )
    sql, order = hit
    json_columns = [c for c in columns if isinstance(table.c[c].type, JSON)]
    if json_columns:
        rows = [{**row, **{c: json_text(row[c]) for c in json_columns}} for row in rows]
    params: Any = [tuple(row[c] for c in order) for row in rows] if order is not None else list(rows)
    conn.exec_driver_sql(sql, params)
    return None


_PG_MAX_PARAMS = 60_000  # PostgreSQL allows 65,535 parameters per statement


def _insert_values(
    conn: Connection,
    table: Table,
    columns: tuple[str, ...],
    rows: Sequence[dict[str, Any]],
    returning: str | None,
) -> set[Any] | None:
    json_columns = {c for c in columns if isinstance(table.c[c].type, JSON)}
    names = ", ".join(f'"{c}"' for c in columns)
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    per_statement = max(1, _PG_MAX_PARAMS // len(columns))
    inserted: set[Any] = set()
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        params = [json_text(row[c]) if c in json_columns else row[c] for row in chunk for c in columns]
        values = ", ".join([one] * len(chunk))
        sql = f'INSERT INTO "{table.name}" ({names}) VALUES {values} ON CONFLICT DO NOTHING'
        if returning is None:
            conn.exec_driver_sql(sql, tuple(params))
        else:
            inserted.update(
                r[0] for r in conn.exec_driver_sql(f'{sql} RETURNING "{returning}"', tuple(params))
            )
    return inserted if returning is not None else None


def upsert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], update: Sequence[str]) -> None:
    """Insert ``rows`` (all with the same keys); where the primary key exists, overwrite ``update``."""
    _on_conflict(conn, table, rows, {c: f'excluded."{c}"' for c in update})


def upsert_add(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], add: Sequence[str]) -> None:
    """Insert ``rows`` (all with the same keys); where the primary key exists, add their ``add`` columns."""
    _on_conflict(conn, table, rows, {c: f'"{table.name}"."{c}" + excluded."{c}"' for c in add})


_upserts: dict[tuple[str, str, tuple[str, ...], tuple[tuple[str, str], ...]], str] = {}


def _on_conflict(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], sets: dict[str, str]
) -> None:
    """``INSERT … ON CONFLICT (primary key) DO UPDATE SET column = expression`` for every row.

    Runs with write batches (rollups, runs, metadata), so the statement is written once per table,
    column set and update, and goes to the driver's executemany: building SQLAlchemy's ``ON CONFLICT``
    construct each time cost more than the whole insert of the generations.
    """
    if not rows:
        return
    columns = tuple(rows[0])
    key = (conn.dialect.name, table.name, columns, tuple(sets.items()))
    sql = _upserts.get(key)
    if sql is None:
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        names = ", ".join(f'"{c}"' for c in columns)
        keys = ", ".join(f'"{c.name}"' for c in table.primary_key.columns)
        assignments = ", ".join(f'"{c}" = {expression}' for c, expression in sets.items())
        sql = _upserts[key] = (
            f'INSERT INTO "{table.name}" ({names}) VALUES ({", ".join([mark] * len(columns))}) '
            f"ON CONFLICT ({keys}) DO UPDATE SET {assignments}"
        )
    json_columns = {c for c in columns if isinstance(table.c[c].type, JSON)}
    conn.exec_driver_sql(
        sql, [tuple(json_text(row[c]) if c in json_columns else row[c] for c in columns) for row in rows]
    )


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


def select_in(conn: Connection, sql: str, values: Sequence[Any], *leading: Any) -> list[Any]:
    """Rows of ``sql`` (a SELECT whose ``{in}`` is filled with one placeholder per value).

    Built as plain driver SQL: SQLAlchemy's expanding ``IN`` recompiles the statement for every
    new list length, which cost more than the query itself on the ingest path. ``leading``
    parameters come before the values (placeholders written in ``sql`` as ``{p}``).
    """
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    text = sql.format(p=mark, **{"in": ", ".join([mark] * len(values))})
    return list(conn.exec_driver_sql(text, (*leading, *values)))
