"""Listing generations: pages chosen by the one query compiler, list rows read from the columns.

The list filters of the API and dashboard are MongoDB-style filters (``server/filters.py`` parses
query strings into them); on the paths held in indexed columns they must still use the indexes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from sightline.schema import Feedback, Generation, Run
from sightline.store import Database, Scope
from sightline.store import tables as t
from sightline.store.generations.ingest import AddFeedback, InsertGenerations, UpsertRun, prepare_generation
from sightline.store.generations.reads.queries import list_generations, list_rows, page_query
from sightline.store.generations.records import to_us

T0 = datetime(2026, 11, 20, tzinfo=UTC)
DEV = Scope(1, "dev")


def _gen(n: int, **fields: Any) -> Generation:
    body: dict[str, Any] = {
        "id": f"00000000-0000-4000-8000-{n:012d}",
        "timestamp": (T0 + timedelta(minutes=n)).isoformat(),
        "model": {"id": "gpt-4o", "provider": "openai"},
        "input": {"content": [{"role": "user", "content": "Hi"}]},
        "output": {"content": f"answer {n}"},
        "usage": {"promptTokens": 10 * n, "completionTokens": n, "cost": 0.000009 * n},
        "performance": {"latency": 100.0 * n, "timeToFirstToken": 10.0 * n},
        **fields,
    }
    return Generation.model_validate(body)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    gens = [
        _gen(1, metadata={"userId": "ann", "plan": "pro"}),
        _gen(2, status="error", error={"type": "rate_limit", "message": "slow"}, cacheHit=True),
        _gen(3, runId="run-1", metadata={"plan": "team"}),
        _gen(4, chatId="chat-1", template={"name": "emoji", "text": "{x}"}, output={"content": {"k": [1]}}),
    ]
    with db.engine.begin() as conn:
        InsertGenerations(DEV, [prepare_generation(g, DEV) for g in gens]).apply(conn)
        UpsertRun(DEV, Run(id="run-1", user_id="carol", metadata={"experiment": "e1"})).apply(conn)
        AddFeedback(DEV, gens[0].id, Feedback(rating=4, comment="good")).apply(conn)
    yield db
    db.close()


# What a table of generations shows: each must read the same from the columns as from the record.
LIST_FIELDS = (
    "id",
    "timestamp",
    "model.id",
    "template.name",
    "template.version",
    "metadata.userId",
    "status",
    "error.type",
    "usage.promptTokens",
    "usage.completionTokens",
    "usage.totalTokens",
    "usage.cost",
    "performance.latency",
    "performance.timeToFirstToken",
    "cacheHit",
    "runId",
    "chatId",
    "output.content",
    "feedback",
)


def _at(record: dict[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def test_list_rows_read_from_the_columns_what_records_hold(db: Database) -> None:
    with db.read() as conn:
        rows = list_rows(conn, DEV.project_id).data
        records = list_generations(conn, DEV.project_id).data
    assert [r["id"] for r in rows] == [r["id"] for r in records] and len(rows) == 4
    for row, record in zip(rows, records, strict=True):
        for path in LIST_FIELDS:
            assert _at(row, path) == _at(record, path), (row["id"], path)
    by_id = {r["id"][-1]: r for r in rows}
    assert by_id["3"]["metadata"]["userId"] == "carol"  # the run's user: one truth, the run's row
    assert by_id["1"]["feedback"]["comment"] == "good"


def test_list_pages_follow_the_cursor(db: Database) -> None:
    with db.read() as conn:
        first = list_rows(conn, DEV.project_id, {"model.id": "gpt-4o"}, limit=3)
        rest = list_rows(conn, DEV.project_id, {"model.id": "gpt-4o"}, limit=3, cursor=first.next_cursor)
    assert len(first.data) == 3 and first.next_cursor and rest.next_cursor is None
    assert [r["id"][-1] for r in first.data + rest.data] == ["4", "3", "2", "1"]


def test_list_filters_on_indexed_columns_plan_as_plain_column_conditions(db: Database) -> None:
    """The list page's filters, compiled by the MongoDB-style compiler, are planned by SQLite exactly
    as the plain column conditions the list filter wrote before (``model_id = ?``, ...): same indexes."""
    if not db.is_sqlite:
        pytest.skip("query plans are read on SQLite")
    more = [
        _gen(
            n,
            model={"id": f"m{n % 7}"},
            metadata={"userId": f"u{n % 50}"},
            status=["ok", "error"][n % 9 == 0],
        )
        for n in range(10, 2000)
    ]
    with db.engine.begin() as conn:
        InsertGenerations(DEV, [prepare_generation(g, DEV) for g in more]).apply(conn)
        conn.execute(text("ANALYZE"))
    g = t.generations
    start, end = datetime(2026, 11, 21, tzinfo=UTC), datetime(2026, 11, 22, tzinfo=UTC)
    cases = [
        ({"model.id": "m3"}, [g.c.model_id == "m3"]),
        ({"metadata.userId": "u7"}, [g.c.user_id == "u7"]),
        ({"template.name": "emoji"}, [g.c.template_name == "emoji"]),
        ({"status": "error"}, [g.c.status == "error"]),
        ({"model.id": "m3", "metadata.userId": "u3"}, [g.c.model_id == "m3", g.c.user_id == "u3"]),
        (
            {"timestamp": {"$gte": start.isoformat(), "$lte": end.isoformat()}},
            [g.c.ts_us >= to_us(start), g.c.ts_us <= to_us(end)],
        ),
    ]

    def plan(query: Any) -> list[str]:
        sql = str(query.compile(db.engine, compile_kwargs={"literal_binds": True}))
        with db.read() as conn:
            return [str(step[3]) for step in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}"))]

    for flt, conditions in cases:
        before = (
            select(g)
            .where(g.c.project_id == DEV.project_id, *conditions)
            .order_by(g.c.ts_us.desc(), g.c.id.desc())
            .limit(51)
        )
        assert plan(page_query(flt, DEV.project_id, 50, None)) == plan(before), flt
