"""The writer, as a thread and as a process of its own (``serve``'s): queued inserts of one scope are
merged into one, each request still gets its own answer, and nothing is acknowledged before commit."""

from __future__ import annotations

import os
import pickle
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Connection, func, select

from sightline.errors import InvalidInput, Unavailable
from sightline.ids import new_id
from sightline.schema import Generation
from sightline.store import Database, Scope, migrate
from sightline.store import tables as t
from sightline.store.engine import writer_process
from sightline.store.engine.writer_process import ProcessWriter
from sightline.store.generations.ingest import InsertGenerations, PreparedGeneration, prepare_generation


def _wait_for(path: Path, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@dataclass
class Gate:
    """An operation that holds the writer inside its transaction until released (files, so that it
    works in a writer process too)."""

    folder: Path
    size: int = 1

    def apply(self, conn: Connection) -> str:
        (self.folder / "entered").touch()
        assert _wait_for(self.folder / "release")
        return "gate"

    def entered(self) -> bool:
        return _wait_for(self.folder / "entered")

    def release(self) -> None:
        (self.folder / "release").touch()


@dataclass
class Refuse:
    """An operation that fails the way a refused write does."""

    size: int = 1

    def apply(self, conn: Connection) -> None:
        raise InvalidInput("metadata.plan: not allowed here", field="metadata.plan")


@pytest.fixture(params=["thread", "process"])
def db(request: pytest.FixtureRequest, database_url: str) -> Iterator[Database]:
    database = Database(database_url, writer_process=request.param == "process")
    migrate(database.engine)
    database.start()
    yield database
    database.close()


@pytest.fixture
def process_db(sqlite_url: str) -> Iterator[Database]:
    database = Database(sqlite_url, writer_process=True)
    migrate(database.engine)
    database.start()
    yield database
    database.close()


def _prepared(scope: Scope, gen_id: str | None = None) -> PreparedGeneration:
    body = {"id": gen_id or new_id()[0], "model": {"id": "gpt-4o"}, "metadata": {"plan": "pro"}}
    return prepare_generation(Generation.model_validate(body), scope)


def _queued_behind_a_gate(db: Database, ops: list[object], folder: Path) -> list[object]:
    """Queue ``ops`` while the writer is held, so they reach it together; their answers or errors."""
    gate = Gate(folder)
    held = db.writer.submit(gate)
    assert gate.entered()
    futures = [db.writer.submit(op) for op in ops]  # type: ignore[arg-type]
    time.sleep(0.2)  # a writer process has them in its pipe by then
    commits = db.writer.commits
    gate.release()
    assert held.result(10) == "gate"
    answers: list[object] = []
    for future in futures:
        try:
            answers.append(future.result(10))
        except Exception as error:  # noqa: BLE001 - the error is the answer under test
            answers.append(error)
    assert db.writer.commits >= commits + 1
    return answers


def test_inserts_queued_together_are_merged_and_each_answered(db: Database, tmp_path: Path) -> None:
    dev, prod = Scope(1, "dev"), Scope(1, "prod")
    twice = new_id()[0]
    first = InsertGenerations(dev, [_prepared(dev, twice), _prepared(dev)])
    second = InsertGenerations(dev, [_prepared(dev), _prepared(dev, twice)])  # repeats an id of the first
    other = InsertGenerations(prod, [_prepared(prod)])
    assert first.merge(second) is not None and first.merge(other) is None

    commits = db.writer.commits
    answers = _queued_behind_a_gate(db, [first, second, other], tmp_path)
    assert answers == [[True, True], [True, False], [True]]
    assert db.writer.commits == commits + 2  # the gate's, then one for all three
    with db.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(t.generations)) == 4
        assert conn.scalar(select(func.sum(t.rollup_hourly.c.requests))) == 4


def test_a_broken_operation_fails_alone_when_merged_with_others(db: Database, tmp_path: Path) -> None:
    scope = Scope(1, "dev")
    good, bad, later = (
        InsertGenerations(scope, [_prepared(scope)]),
        InsertGenerations(scope, [_prepared(scope)]),
        InsertGenerations(scope, [_prepared(scope), _prepared(scope)]),
    )
    bad.rows[0][t.GENERATION_AT["model_id"]] = None  # the database refuses the row: model_id is NOT NULL
    first, failed, last = _queued_behind_a_gate(db, [good, bad, later], tmp_path)
    assert first == [True] and last == [True, True]
    assert isinstance(failed, Exception)
    with db.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(t.generations)) == 3


def test_an_error_reaches_the_caller_as_raised(db: Database) -> None:
    with pytest.raises(InvalidInput) as refused:
        db.writer.write_sync(Refuse(), timeout=20)  # type: ignore[arg-type]
    assert refused.value.field == "metadata.plan" and "not allowed" in refused.value.message
    scope = Scope(1, "dev")
    assert db.writer.write_sync(InsertGenerations(scope, [_prepared(scope)]), timeout=20) == [True]


async def test_an_awaited_write_is_committed_when_it_returns(db: Database) -> None:
    scope = Scope(1, "dev")
    ids = [new_id()[0] for _ in range(3)]
    assert await db.writer.write(InsertGenerations(scope, [_prepared(scope, i) for i in ids])) == [True] * 3
    with db.engine.connect() as conn:  # another connection: the rows are committed
        assert conn.scalar(select(func.count()).select_from(t.generations)) == 3


def test_an_operation_that_cannot_reach_the_writer_process_is_refused_at_once(process_db: Database) -> None:
    scope = Scope(1, "dev")
    op = InsertGenerations(scope, [_prepared(scope)])
    op.rows[0][t.GENERATION_AT["cost"]] = lambda: None
    with pytest.raises(Exception, match="pickle"):
        process_db.writer.submit(op)
    assert process_db.writer.depth() == 0
    assert process_db.writer.write_sync(InsertGenerations(scope, [_prepared(scope)]), timeout=20) == [True]


def test_when_the_writer_process_dies_waiting_writes_fail_and_the_next_one_starts_another(
    process_db: Database, tmp_path: Path
) -> None:
    writer = process_db.writer
    assert isinstance(writer, ProcessWriter)
    gate = Gate(tmp_path)
    held = writer.submit(gate)
    assert gate.entered()
    first_pid = writer.pid
    assert first_pid is not None
    os.kill(first_pid, signal.SIGKILL)  # inside the gate's transaction: nothing of it is committed
    with pytest.raises(Unavailable, match="not committed"):
        held.result(20)
    assert writer.depth() == 0
    scope = Scope(1, "dev")
    assert writer.write_sync(InsertGenerations(scope, [_prepared(scope)]), timeout=20) == [True]
    assert writer.pid not in (None, first_pid)


def test_writes_the_socket_cannot_take_at_once_are_sent_in_order_and_committed(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the writer process is busy, a socket with little room fills up: the sender thread then
    sends what waits (the submitting thread never blocks), in order, and each write is committed."""
    monkeypatch.setattr(writer_process, "_BUFFER", 4096)  # the kernel's least
    database = Database(sqlite_url, writer_process=True)
    migrate(database.engine)
    database.start()
    try:
        scope = Scope(1, "dev")
        gate = Gate(tmp_path)
        held = database.writer.submit(gate)
        assert gate.entered()
        ids = [[new_id()[0] for _ in range(20)] for _ in range(30)]
        started = time.monotonic()
        futures = [
            database.writer.submit(InsertGenerations(scope, [_prepared(scope, i) for i in batch]))
            for batch in ids
        ]
        assert time.monotonic() - started < 5  # queued, not waiting for the held writer
        gate.release()
        assert held.result(20) == "gate"
        assert [f.result(20) for f in futures] == [[True] * 20] * 30
        # The same ids again, queued behind the first: each answered "already there".
        again = database.writer.submit(InsertGenerations(scope, [_prepared(scope, i) for i in ids[0]]))
        assert again.result(20) == [False] * 20
        with database.engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(t.generations)) == 600
    finally:
        database.close()


def test_stopping_commits_every_queued_write_first(process_db: Database) -> None:
    scope = Scope(1, "dev")
    futures = [process_db.writer.submit(InsertGenerations(scope, [_prepared(scope)])) for _ in range(50)]
    process_db.close()
    assert [f.result(0) for f in futures] == [[True]] * 50
    with process_db.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(t.generations)) == 50
    with pytest.raises(Unavailable):
        process_db.writer.submit(InsertGenerations(scope, [_prepared(scope)]))


def test_an_insert_travels_to_a_writer_process_unchanged() -> None:
    scope = Scope(3, "prod")
    bodies = [
        {"id": new_id()[0], "model": {"id": "gpt-4o"}, "metadata": {"plan": "pro", "tags": ["a", "b"]}},
        {
            "id": new_id()[0],
            "model": {"id": "gpt-4o-mini"},
            "template": {"name": "greet", "text": "Hi {name}"},
        },
        {"id": new_id()[0], "model": {"id": "x"}, "feedback": {"rating": 4}, "runId": "run-1"},
    ]
    op = InsertGenerations(scope, [prepare_generation(Generation.model_validate(b), scope) for b in bodies])
    copy = pickle.loads(pickle.dumps(op))
    assert copy == op and copy.scope == op.scope and copy.size == 3
    body = t.GENERATION_AT["body"]
    assert all(type(row[body]) is str for row in copy.rows)  # JSON text, stored as it is
    assert orjson.loads(copy.rows[0][body])["metadata"]["tags"] == ["a", "b"]
    assert copy.meta[2] == {} and copy.meta[0] is None  # kept for a generation in a run only
    assert copy.feedback[2] is not None and copy.feedback[2]["rating"] == 4
    assert [row[1] for row in copy.meta_rows] == ["plan", "tags:a", "tags:b"]
    assert [prompt[1] for prompt in copy.prompts] == ["greet"]
