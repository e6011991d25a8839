"""The ingest sequence: a number the server gives each generation as it is written.

Client timestamps say when a call started, and arrive late (an SDK retries for minutes, a backfill
sends last month): a consumer that follows "new generations" by timestamp misses rows. So the writer
numbers each generation it inserts (``generations.seq``), and a consumer (an evaluator, an export)
follows them from a cursor with :func:`generations_after`.

**Why the numbers are in commit order, also with several server processes on PostgreSQL.** A plain
database sequence hands out numbers when rows are inserted, not when they become visible: process
A takes 100, process B takes 101 and commits first, and a consumer that read 101 and moved its cursor
there never sees 100. Here the numbers come from one row (``sequences``), which the insert's
transaction updates (:func:`number_rows`): the row stays locked until that transaction commits, and
PostgreSQL makes a commit visible before it releases the locks the transaction held. So the next
transaction that takes numbers waits for the previous one to be visible, and gets higher numbers:
whoever sees number n sees every committed number below it. The price is that the transactions of
several writers (processes) that insert generations commit one after the other from the moment
they take their numbers (taken just before the generations are inserted) to their commit; each
writer groups many requests into one transaction, so that is one short wait a transaction, not a
row. SQLite has one writer at a time anyway.

**What a consumer does.** Keep the last number it handled (its cursor, starting at 0), ask for the
generations after it, handle them, and store the new cursor, best in the same transaction as what it
wrote (a job's result commits with its completion). Numbers are increasing, not contiguous: a
transaction that failed, or ids another process wrote first, leave gaps, which are never filled in
later, so a gap means nothing is missing. Rows written before the sequence existed were numbered in
(timestamp, id) order by the migration.

Deleting rows never makes numbers come again: the row keeps the last number handed out, and a
database restored from a backup (which carries ``seq`` but not this row) starts after the largest
number it holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from .. import tables as t
from ..engine.dialect import select_in
from .reads.queries import to_wire

__all__ = ["Followed", "generations_after", "number_rows"]

_SEQ = t.GENERATION_AT["seq"]
_NAME = "generations"
# The last number handed out, moved on by n ({in}: n's placeholder); never below the largest number
# stored (see above). The MAX is one step down the seq index.
_TAKE = (
    "UPDATE sequences SET value = (CASE WHEN value >= (SELECT COALESCE(MAX(seq), 0) FROM generations) "
    "THEN value ELSE (SELECT COALESCE(MAX(seq), 0) FROM generations) END) + {in} "
    f"WHERE name = '{_NAME}' RETURNING value"
)


def number_rows(conn: Connection, rows: Sequence[list[Any]]) -> None:
    """Give ``rows`` (generations rows, in ``tables.GENERATION_COLUMNS`` order) the next numbers of
    the ingest sequence, in their order. Call it in the transaction that inserts them, just before the
    insert: from here to its commit, other transactions taking numbers wait (see the module's text).

    The statement goes to the driver's cursor (``select_in``): through SQLAlchemy's ``execute`` it
    cost about 60 µs more, as much again as the statement itself, on every commit of the writer."""
    if not rows:
        return
    taken = select_in(conn, _TAKE, [len(rows)])
    if not taken:  # a database whose row was removed: start it again (after what is stored)
        conn.execute(t.sequences.insert().values(name=_NAME, value=0))
        taken = select_in(conn, _TAKE, [len(rows)])
    first = int(taken[0][0]) - len(rows) + 1
    for number, row in enumerate(rows, first):
        row[_SEQ] = number


@dataclass(frozen=True, slots=True)
class Followed:
    """Generations after a cursor, in sequence order, and the cursor to ask from next time."""

    data: list[dict[str, Any]]
    cursor: int


def generations_after(conn: Connection, project_id: int, seq: int, limit: int = 100) -> Followed:
    """The generations of ``project_id`` numbered after ``seq`` (at most ``limit``), in the order they
    were written, as the API answers them; ``cursor`` is the last one's number (``seq`` when none)."""
    g = t.generations
    rows = [
        r._mapping
        for r in conn.execute(
            select(g)
            .where(g.c.seq > seq, g.c.project_id == project_id)
            .order_by(g.c.seq)
            .limit(max(1, min(limit, 10_000)))
        )
    ]
    return Followed(to_wire(conn, project_id, rows), int(rows[-1]["seq"]) if rows else seq)
