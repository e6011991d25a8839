"""The writer: queued inserts of one scope are merged into one; each request still gets its own answer."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Connection, func, select

from sightline.ids import new_id
from sightline.schema import Generation
from sightline.store import Database, Scope, migrate
from sightline.store import tables as t
from sightline.store.ingest import InsertGenerations, PreparedGeneration, prepare_generation


@dataclass
class Gate:
    """An operation that holds the writer inside its transaction until released."""

    entered: threading.Event
    release: threading.Event
    size: int = 1

    def apply(self, conn: Connection) -> str:
        self.entered.set()
        assert self.release.wait(10)
        return "gate"


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate(database.engine)
    database.start()
    yield database
    database.close()


def _prepared(scope: Scope, gen_id: str | None = None) -> PreparedGeneration:
    body = {"id": gen_id or new_id()[0], "model": {"id": "gpt-4o"}, "metadata": {"plan": "pro"}}
    return prepare_generation(Generation.model_validate(body), scope)


def _queued_behind_a_gate(db: Database, ops: list[object]) -> list[object]:
    """Queue ``ops`` while the writer is held, so they reach it together; their answers or errors."""
    gate = Gate(threading.Event(), threading.Event())
    held = db.writer.submit(gate)
    assert gate.entered.wait(10)
    futures = [db.writer.submit(op) for op in ops]  # type: ignore[arg-type]
    commits = db.writer.commits
    gate.release.set()
    assert held.result(10) == "gate"
    answers: list[object] = []
    for future in futures:
        try:
            answers.append(future.result(10))
        except Exception as error:  # noqa: BLE001 - the error is the answer under test
            answers.append(error)
    assert db.writer.commits >= commits + 1
    return answers


def test_inserts_queued_together_are_merged_and_each_answered(db: Database) -> None:
    dev, prod = Scope(1, "dev"), Scope(1, "prod")
    twice = new_id()[0]
    first = InsertGenerations(dev, [_prepared(dev, twice), _prepared(dev)])
    second = InsertGenerations(dev, [_prepared(dev), _prepared(dev, twice)])  # repeats an id of the first
    other = InsertGenerations(prod, [_prepared(prod)])
    assert first.merge(second) is not None and first.merge(other) is None

    commits = db.writer.commits
    answers = _queued_behind_a_gate(db, [first, second, other])
    assert answers == [[True, True], [True, False], [True]]
    assert db.writer.commits == commits + 2  # the gate's, then one for all three
    with db.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(t.generations)) == 4
        assert conn.scalar(select(func.sum(t.rollup_hourly.c.requests))) == 4


def test_a_broken_operation_fails_alone_when_merged_with_others(db: Database) -> None:
    scope = Scope(1, "dev")
    broken = _prepared(scope)
    good, bad, later = (
        InsertGenerations(scope, [_prepared(scope)]),
        InsertGenerations(scope, [broken]),
        InsertGenerations(scope, [_prepared(scope), _prepared(scope)]),
    )
    del broken.row["model_id"]  # the database refuses the row: model_id is NOT NULL
    first, failed, last = _queued_behind_a_gate(db, [good, bad, later])
    assert first == [True] and last == [True, True]
    assert isinstance(failed, Exception)
    with db.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(t.generations)) == 3
