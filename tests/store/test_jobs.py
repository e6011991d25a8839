"""The job queue's operations through the real writer, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from sightline.errors import NotFound
from sightline.store import Database
from sightline.store import tables as t
from sightline.store.gateway.cache import PurgeExpired, StoreResponse
from sightline.store.jobs import (
    Claim,
    Complete,
    Enqueue,
    Fail,
    LeaseLost,
    PruneFinished,
    Release,
    Renew,
    get_job,
)

S = 1_000_000  # µs
T0 = 1_800_000_000 * S


def _row(db: Database, job_id: int) -> Any:
    with db.read() as conn:
        return conn.execute(select(t.jobs).where(t.jobs.c.id == job_id)).one()


def _cache_entry(db: Database, key: str, expires_us: int) -> None:
    db.writer.write_sync(StoreResponse(1, key, "chat/completions", "m", "{}", T0 - 10 * S, expires_us))


def _cache_keys(db: Database) -> set[str]:
    with db.read() as conn:
        return set(conn.scalars(select(t.gateway_cache.c.key)))


def test_a_job_is_claimed_by_one_worker_and_its_write_commits_with_its_completion(db: Database) -> None:
    job_id = db.writer.write_sync(Enqueue("purge", {"a": 1}, T0, 3, project_id=1))
    _cache_entry(db, "old", T0 - S)
    _cache_entry(db, "live", T0 + 3600 * S)

    [job] = db.writer.write_sync(Claim("w1", ("purge",), T0, T0 + 60 * S, 10))
    assert (job.id, job.kind, job.payload, job.attempts, job.project_id) == (job_id, "purge", {"a": 1}, 1, 1)
    assert db.writer.write_sync(Claim("w2", ("purge",), T0, T0 + 60 * S, 10)) == []
    assert _row(db, job_id).state == "running"

    assert db.writer.write_sync(Complete(job_id, "w1", T0 + S, PurgeExpired(T0))) == 1
    row = _row(db, job_id)
    assert (row.state, row.result, row.finished_us) == ("succeeded", {"value": 1}, T0 + S)
    assert _cache_keys(db) == {"live"}


def test_claims_take_only_the_kinds_asked_for_and_only_what_is_due(db: Database) -> None:
    db.writer.write_sync(Enqueue("a", {}, T0, 3))
    later = db.writer.write_sync(Enqueue("a", {}, T0, 3, due_us=T0 + 5 * S))
    db.writer.write_sync(Enqueue("b", {}, T0, 3))
    assert [j.kind for j in db.writer.write_sync(Claim("w", ("a",), T0, T0 + 60 * S, 10))] == ["a"]
    assert [j.id for j in db.writer.write_sync(Claim("w", ("a",), T0 + 5 * S, T0 + 65 * S, 10))] == [later]


def test_a_completion_after_the_lease_passed_to_another_worker_writes_nothing(db: Database) -> None:
    job_id = db.writer.write_sync(Enqueue("purge", {}, T0, 3))
    _cache_entry(db, "old", T0 - S)
    db.writer.write_sync(Claim("w1", ("purge",), T0, T0 + 10 * S, 1))
    # w1 stalls past its lease; w2 takes the job over
    [again] = db.writer.write_sync(Claim("w2", ("purge",), T0 + 11 * S, T0 + 21 * S, 1))
    assert (again.id, again.attempts, again.worker) == (job_id, 2, "w2")

    with pytest.raises(LeaseLost):
        db.writer.write_sync(Complete(job_id, "w1", T0 + 12 * S, PurgeExpired(T0)))
    assert _cache_keys(db) == {"old"}  # the write went back with the refused completion
    assert not db.writer.write_sync(Renew(job_id, "w1", T0 + 30 * S))
    assert not db.writer.write_sync(Fail(job_id, "w1", T0 + 12 * S, "late", None))
    assert (_row(db, job_id).state, _row(db, job_id).worker) == ("running", "w2")


def test_a_failed_attempt_is_queued_again_and_the_last_one_fails_the_job_with_its_error(db: Database) -> None:
    job_id = db.writer.write_sync(Enqueue("k", {}, T0, 2))
    db.writer.write_sync(Claim("w", ("k",), T0, T0 + 60 * S, 1))
    assert db.writer.write_sync(Fail(job_id, "w", T0 + S, "ValueError: first", T0 + 11 * S))
    row = _row(db, job_id)
    assert (row.state, row.due_us, row.error, row.attempts) == ("queued", T0 + 11 * S, "ValueError: first", 1)

    assert db.writer.write_sync(Claim("w", ("k",), T0 + 10 * S, T0 + 70 * S, 1)) == []  # backing off
    [job] = db.writer.write_sync(Claim("w", ("k",), T0 + 11 * S, T0 + 71 * S, 1))
    assert job.attempts == 2 == job.max_attempts
    db.writer.write_sync(Fail(job_id, "w", T0 + 12 * S, "ValueError: second", None))
    row = _row(db, job_id)
    assert (row.state, row.error, row.finished_us) == ("failed", "ValueError: second", T0 + 12 * S)
    assert db.writer.write_sync(Claim("w", ("k",), T0 + 10_000 * S, T0 + 10_060 * S, 1)) == []


def test_a_lease_that_ran_out_on_the_last_attempt_fails_the_job(db: Database) -> None:
    job_id = db.writer.write_sync(Enqueue("k", {}, T0, 1))
    db.writer.write_sync(Claim("w", ("k",), T0, T0 + 60 * S, 1))
    assert db.writer.write_sync(Claim("w2", ("k",), T0 + 61 * S, T0 + 121 * S, 1)) == []
    row = _row(db, job_id)
    assert row.state == "failed" and "lease ran out" in row.error


def test_a_job_given_back_is_queued_at_once_without_spending_an_attempt(db: Database) -> None:
    job_id = db.writer.write_sync(Enqueue("k", {}, T0, 3))
    db.writer.write_sync(Claim("w", ("k",), T0, T0 + 60 * S, 1))
    assert db.writer.write_sync(Release(job_id, "w", T0 + S))
    row = _row(db, job_id)
    assert (row.state, row.attempts, row.due_us) == ("queued", 0, T0 + S)


def test_a_key_enqueued_twice_is_one_job(db: Database) -> None:
    first = db.writer.write_sync(Enqueue("p", {}, T0, 1, key="p@1"))
    second = db.writer.write_sync(Enqueue("p", {}, T0 + S, 1, key="p@1"))
    assert first == second
    with db.read() as conn:
        assert conn.scalar(select(func.count()).select_from(t.jobs)) == 1


def test_a_job_is_shown_to_its_project_only(db: Database) -> None:
    mine = db.writer.write_sync(Enqueue("k", {"x": "y"}, T0, 3, project_id=1))
    installation = db.writer.write_sync(Enqueue("k", {}, T0, 3))
    with db.read() as conn:
        shown = get_job(conn, 1, mine)
        assert shown["state"] == "queued" and shown["payload"] == {"x": "y"} and shown["maxAttempts"] == 3
        with pytest.raises(NotFound):
            get_job(conn, 2, mine)
        with pytest.raises(NotFound):
            get_job(conn, 1, installation)


def test_pruning_deletes_only_jobs_that_ended_before_the_time_given(db: Database) -> None:
    old_done, old_failed, recent, waiting, running = (
        db.writer.write_sync(Enqueue("k", {}, T0, 1)) for _ in range(5)
    )
    db.writer.write_sync(Claim("w", ("k",), T0, T0 + 10**9 * S, 4))
    db.writer.write_sync(Complete(old_done, "w", T0 + S))
    db.writer.write_sync(Fail(old_failed, "w", T0 + S, "boom", None))
    db.writer.write_sync(Complete(recent, "w", T0 + 100 * S))
    db.writer.write_sync(Release(waiting, "w", T0 + S))
    assert db.writer.write_sync(PruneFinished(T0 + 50 * S)) == 2
    with db.read() as conn:
        assert set(conn.scalars(select(t.jobs.c.id))) == {recent, waiting, running}
