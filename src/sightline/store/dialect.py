"""The few statements that SQLite and PostgreSQL spell differently. Nowhere else branches on dialect."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

__all__ = ["advance_sequences", "insert_ignore", "upsert"]


def _insert(conn: Connection, table: Table) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


def insert_ignore(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows``, silently skipping any whose primary key is already there."""
    if rows:
        conn.execute(_insert(conn, table).on_conflict_do_nothing(), list(rows))


def upsert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], update: Sequence[str]) -> None:
    """Insert ``rows``; where the primary key exists, overwrite the ``update`` columns."""
    if not rows:
        return
    stmt = _insert(conn, table)
    keys = [c.name for c in table.primary_key.columns]
    stmt = stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in update})
    conn.execute(stmt, list(rows))


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
