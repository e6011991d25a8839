"""The runs list on both databases: pages forwards and back, sizes, search."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sightline.schema import Generation
from sightline.store import Database, Scope
from sightline.store.generations.ingest import InsertGenerations, prepare_generation
from sightline.store.generations.reads.runs import list_runs

DEMO = Scope(1, "dev")
START = datetime(2026, 11, 1, tzinfo=UTC)


def _runs(db: Database, count: int) -> None:
    gens = [
        Generation.model_validate(
            {
                "id": f"g{n}",
                "timestamp": (START + timedelta(seconds=n // 2)).isoformat(),  # two runs a second
                "model": {"id": "gpt-4o-mini"},
                "input": {"content": [{"role": "user", "content": f"question {n}"}]},
                "output": {"content": "the glacier" if n % 10 == 0 else "an answer"},
                "runId": f"run-{n:03d}",
            }
        )
        for n in range(count)
    ]
    db.writer.write_sync(InsertGenerations(DEMO, [prepare_generation(g, DEMO) for g in gens]))


def test_pages_forwards_and_back_show_the_same_runs(db: Database) -> None:
    _runs(db, 60)
    with db.read() as conn:
        pages = [list_runs(conn, 1, limit=25)]
        while pages[-1].next_cursor:
            pages.append(list_runs(conn, 1, limit=25, cursor=pages[-1].next_cursor))
        assert [len(p.data) for p in pages] == [25, 25, 10]
        forwards = [r["id"] for p in pages for r in p.data]
        assert forwards == [f"run-{n:03d}" for n in range(59, -1, -1)]  # newest first, ties by id
        # Back from the last page: the second, then the first, which says nothing comes before it.
        second = list_runs(conn, 1, limit=25, before=pages[2].first_cursor)
        assert [r["id"] for r in second.data] == [r["id"] for r in pages[1].data]
        assert second.next_cursor is not None
        first = list_runs(conn, 1, limit=25, before=second.next_cursor)
        assert [r["id"] for r in first.data] == [r["id"] for r in pages[0].data]
        assert first.next_cursor is None
        # And forwards again (older) from a page read backwards.
        again = list_runs(conn, 1, limit=25, cursor=first.first_cursor)
        assert [r["id"] for r in again.data] == [r["id"] for r in pages[1].data]


def test_a_search_pages_like_the_rest(db: Database) -> None:
    _runs(db, 60)
    with db.read() as conn:
        found = list_runs(conn, 1, q="glacier", limit=4)
        assert [r["id"] for r in found.data] == ["run-050", "run-040", "run-030", "run-020"]
        rest = list_runs(conn, 1, q="glacier", limit=4, cursor=found.next_cursor)
        assert [r["id"] for r in rest.data] == ["run-010", "run-000"] and rest.next_cursor is None
