"""The ingest sequence: generations numbered as they are written, followed from a cursor."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import case, create_engine, delete, func, select, text, update

from sightline.schema import Generation
from sightline.store import Database, Scope
from sightline.store import tables as t
from sightline.store.engine.migrate import alembic_config
from sightline.store.generations.ingest import InsertGenerations, prepare_generation
from sightline.store.generations.records import generation_rows
from sightline.store.generations.sequence import generations_after, number_rows

from ..conftest import Api

DEMO, OTHER = Scope(1, "dev"), Scope(2, "dev")


def _insert(db: Database, scope: Scope, *stamps: datetime) -> list[str]:
    gens = [
        Generation.model_validate({"id": str(uuid.uuid4()), "timestamp": ts, "model": {"id": "m"}})
        for ts in stamps
    ]
    db.writer.write_sync(InsertGenerations(scope, [prepare_generation(g, scope) for g in gens]))
    return [g.id for g in gens]


def test_a_consumer_follows_new_rows_in_the_order_they_were_written_not_their_timestamps(
    db: Database,
) -> None:
    now = datetime.now(UTC)
    first = _insert(db, DEMO, now, now + timedelta(seconds=1))
    _insert(db, OTHER, now)
    late = _insert(db, DEMO, now - timedelta(days=30))  # an SDK that was offline for a month
    newer = _insert(db, DEMO, now + timedelta(seconds=2), now + timedelta(seconds=3))

    with db.read() as conn:
        page = generations_after(conn, DEMO.project_id, 0, limit=3)
        assert [g["id"] for g in page.data] == [*first, *late]
        rest = generations_after(conn, DEMO.project_id, page.cursor, limit=3)
        assert [g["id"] for g in rest.data] == newer
        assert rest.data[0]["model"]["id"] == "m"  # records as the API answers them
        done = generations_after(conn, DEMO.project_id, rest.cursor)
        assert (done.data, done.cursor) == ([], rest.cursor)
        # the other project's row has its number in between, and is not shown here
        assert [g["id"] for g in generations_after(conn, OTHER.project_id, 0).data] != []


def test_numbers_never_come_again_when_the_newest_rows_are_deleted(db: Database) -> None:
    _insert(db, DEMO, datetime.now(UTC), datetime.now(UTC))
    with db.read() as conn:
        cursor = generations_after(conn, DEMO.project_id, 0).cursor
    with db.transaction() as conn:
        conn.execute(delete(t.generations))  # erasure, say
    [again] = _insert(db, DEMO, datetime.now(UTC))
    with db.read() as conn:
        assert [g["id"] for g in generations_after(conn, DEMO.project_id, cursor).data] == [again]


def test_after_a_restore_new_rows_are_numbered_after_the_restored_ones(db: Database) -> None:
    _insert(db, DEMO, datetime.now(UTC), datetime.now(UTC))
    with db.transaction() as conn:
        conn.execute(update(t.sequences).values(value=0))  # a fresh database: its counter knows no rows
    [new] = _insert(db, DEMO, datetime.now(UTC))
    with db.read() as conn:
        numbers = dict(conn.execute(select(t.generations.c.id, t.generations.c.seq)).all())
    assert numbers[new] == 3 and sorted(numbers.values()) == [1, 2, 3]


def test_the_migration_numbers_the_rows_already_there_by_timestamp(database_url: str) -> None:
    engine = create_engine(database_url)
    config = alembic_config(database_url)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0005")
    base = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        for i, days in enumerate((3, 1, 2)):
            gen = Generation.model_validate(
                {
                    "id": f"00000000-0000-4000-8000-00000000000{i}",
                    "timestamp": base + timedelta(days=days),
                    "model": {"id": "m"},
                }
            )
            row, _ = generation_rows(gen, DEMO)
            columns = [c for c in t.GENERATION_COLUMNS if c != "seq"]
            values = dict(zip(t.GENERATION_COLUMNS, row, strict=True))
            names = ", ".join(columns)
            marks = ", ".join(f":{c}" for c in columns)
            conn.execute(
                text(f"INSERT INTO generations ({names}) VALUES ({marks})"), {c: values[c] for c in columns}
            )
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    with engine.connect() as conn:
        numbered = conn.execute(text("SELECT id, seq FROM generations ORDER BY seq")).all()
        counter = conn.execute(text("SELECT value FROM sequences")).scalar_one()
    assert [(row.id[-1], row.seq) for row in numbered] == [("1", 1), ("2", 2), ("0", 3)]
    assert counter == 3
    engine.dispose()


def test_numbers_are_taken_in_commit_order_across_writers_on_postgresql(
    dialect: str, database_url: str
) -> None:
    """Two server processes' writers: while one transaction holds numbers it has not committed, the
    other waits to take its own, so no reader ever sees a number whose predecessor is still to come."""
    if dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    engines = [
        create_engine(database_url.replace("postgresql://", "postgresql+psycopg://")) for _ in range(3)
    ]
    first_conn = engines[0].connect()
    first = first_conn.begin()
    rows_a = [_row()]
    number_rows(first_conn, rows_a)  # numbers taken, not committed

    rows_b = [_row()]
    done = threading.Event()
    pid: list[int] = []

    def second_writer() -> None:
        with engines[1].begin() as conn:
            pid.append(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
            number_rows(conn, rows_b)
            conn.execute(t.generations.insert(), [dict(zip(t.GENERATION_COLUMNS, rows_b[0], strict=True))])
        done.set()

    thread = threading.Thread(target=second_writer)
    thread.start()
    deadline = time.monotonic() + 30
    with engines[2].connect() as reader:
        # until the second writer is seen waiting for a lock (or, if it were not made to, has committed)
        while not done.is_set() and time.monotonic() < deadline:
            waiting = (
                pid
                and reader.execute(
                    text("SELECT count(*) FROM pg_locks WHERE pid = :pid AND NOT granted"), {"pid": pid[0]}
                ).scalar_one()
            )
            if waiting:
                break
            time.sleep(0.01)
        assert not done.is_set(), "the second writer committed numbers while earlier ones were in flight"
    first_conn.execute(t.generations.insert(), [dict(zip(t.GENERATION_COLUMNS, rows_a[0], strict=True))])
    first.commit()
    first_conn.close()
    thread.join(30)
    assert done.is_set()
    assert rows_b[0][t.GENERATION_AT["seq"]] > rows_a[0][t.GENERATION_AT["seq"]]
    for engine in engines:
        engine.dispose()


def _row() -> list[object]:
    gen = Generation.model_validate({"id": str(uuid.uuid4()), "model": {"id": "m"}})
    row, _ = generation_rows(gen, DEMO)
    return row


async def test_generations_posted_to_the_server_are_followed_in_the_order_they_arrived(api: Api) -> None:
    now = datetime.now(UTC)
    sent = []
    for stamp in (now, now - timedelta(days=30), now + timedelta(seconds=1)):
        gen_id = str(uuid.uuid4())
        answer = await api.http.post(
            "/api/generations", json={"id": gen_id, "timestamp": stamp.isoformat(), "model": {"id": "m"}}
        )
        assert answer.status_code == 201
        sent.append(gen_id)
    with api.db.read() as conn:
        project_id = conn.scalar(select(t.projects.c.id).where(t.projects.c.name == "demo"))
        followed = generations_after(conn, int(project_id), 0)
    assert [g["id"] for g in followed.data] == sent


def test_numbers_taken_through_the_drivers_cursor_are_those_sqlalchemys_statement_takes(db: Database) -> None:
    """number_rows steps under SQLAlchemy (the driver's cursor, for speed): the same statement built with
    SQLAlchemy Core continues exactly where it left off, and both move the one counter."""
    s, g = t.sequences, t.generations
    stored = select(func.coalesce(func.max(g.c.seq), 0)).scalar_subquery()
    core = (
        update(s)
        .where(s.c.name == "generations")
        .values(value=case((s.c.value >= stored, s.c.value), else_=stored) + 3)
        .returning(s.c.value)
    )
    with db.transaction() as conn:
        rows = [_row(), _row()]
        number_rows(conn, rows)
        assert conn.execute(core).scalar_one() == 5
        later = [_row()]
        number_rows(conn, later)
    assert [row[t.GENERATION_AT["seq"]] for row in (*rows, *later)] == [1, 2, 6]
