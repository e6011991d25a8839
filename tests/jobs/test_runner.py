"""The runner in one process: handlers by kind, back-off, periodic jobs, the cache purge, shutdown."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import select

from sightline.evals.evaluator import Services
from sightline.gateway import Gateway
from sightline.jobs import Handlers, Runner
from sightline.pipelines.sandbox import Sandbox
from sightline.server.app import job_handlers
from sightline.settings import Settings
from sightline.store import Database
from sightline.store import tables as t
from sightline.store.engine.writer import WriteOp
from sightline.store.gateway.cache import StoreResponse
from sightline.store.jobs import Job

from .conftest import Clock

S = 1_000_000


def _job(db: Database, job_id: int) -> Any:
    with db.read() as conn:
        return conn.execute(select(t.jobs).where(t.jobs.c.id == job_id)).one()


def _jobs(db: Database) -> list[Any]:
    with db.read() as conn:
        return list(conn.execute(select(t.jobs).order_by(t.jobs.c.id)))


async def test_a_failing_job_backs_off_doubling_and_ends_failed_with_its_error(
    db: Database, clock: Clock
) -> None:
    calls: list[int] = []

    async def flaky(job: Job) -> WriteOp | None:
        calls.append(job.attempts)
        raise ConnectionError(f"upstream refused attempt {job.attempts}")

    handlers = Handlers()
    handlers.add("flaky", flaky)
    runner = Runner(db, handlers, clock=clock, max_attempts=4, backoff=10)
    job_id = await runner.enqueue("flaky", {"n": 1}, project_id=1)

    delays = []
    for _ in range(3):
        before = clock.now
        assert await runner.run_once() == 1
        row = _job(db, job_id)
        assert row.state == "queued"
        delays.append((row.due_us - int(before * S)) / S)
        assert await runner.run_once() == 0  # not yet due: backing off
        clock.advance(delays[-1])
    assert delays == [10, 20, 40]
    assert await runner.run_once() == 1  # the fourth and last attempt
    row = _job(db, job_id)
    assert (row.state, row.attempts) == ("failed", 4)
    assert row.error == "ConnectionError: upstream refused attempt 4"
    assert calls == [1, 2, 3, 4]
    clock.advance(3600)
    assert await runner.run_once() == 0


async def test_a_job_that_succeeds_after_a_failure_keeps_its_result(db: Database, clock: Clock) -> None:
    async def second_time_lucky(job: Job) -> WriteOp | None:
        if job.attempts == 1:
            raise RuntimeError("once")
        return StoreResponse(1, "k", "chat/completions", "m", "{}", 0, 2**62)

    handlers = Handlers()
    handlers.add("lucky", second_time_lucky)
    runner = Runner(db, handlers, clock=clock, backoff=0)
    job_id = await runner.enqueue("lucky")
    assert await runner.run_once() == 2  # with no back-off the retry is due at once
    row = _job(db, job_id)
    assert (row.state, row.attempts, row.error) == ("succeeded", 2, None)
    with db.read() as conn:
        assert conn.scalar(select(t.gateway_cache.c.key)) == "k"  # the handler's write, with the completion


async def test_a_periodic_job_enqueued_by_two_processes_in_one_period_exists_and_runs_once(
    database_url: str, clock: Clock
) -> None:
    ran: list[int] = []

    async def tick(job: Job) -> WriteOp | None:
        ran.append(job.id)
        return None

    databases = [Database(database_url), Database(database_url)]  # two engines, two writers
    runners = []
    for database in databases:
        database.start()
        handlers = Handlers()
        handlers.add("tick", tick, every=60)
        runners.append(Runner(database, handlers, clock=clock))
    try:
        await asyncio.gather(*(runner.enqueue_periodic() for runner in runners))
        await asyncio.gather(*(runner.enqueue_periodic() for runner in runners))
        assert [row.key for row in _jobs(databases[0])] == [f"tick@{int(clock.now // 60 * 60 * S)}"]
        assert sum(await asyncio.gather(*(runner.run_once() for runner in runners))) == 1
        clock.advance(60)
        assert sum(await asyncio.gather(*(runner.run_once() for runner in runners))) == 1
        assert len(ran) == 2 == len(set(ran)) == len(_jobs(databases[0]))
    finally:
        for database in databases:
            database.close()


async def test_the_cache_purge_runs_as_a_periodic_job(db: Database, clock: Clock) -> None:
    clock.now = time.time()  # the purge deletes what expired by the wall clock
    now = int(clock.now * S)
    for key, expires in (("expired", now - S), ("live", now + 3600 * S)):
        db.writer.write_sync(StoreResponse(1, key, "chat/completions", "m", "{}", now - 10 * S, expires))
    settings = Settings(database_url=db.url, secret_key="x" * 40, cache_purge_seconds=600)
    gateway, sandbox = Gateway(settings, db), Sandbox()
    runner = Runner(db, job_handlers(settings, Services(db, gateway, sandbox, settings)), clock=clock)

    assert await runner.run_once() == 5  # cache purge, job pruning, online evaluation, retention, counters
    await gateway.aclose()
    sandbox.close()
    [job] = [row for row in _jobs(db) if row.kind == "gateway.cache.purge"]
    assert (job.state, job.result, job.project_id) == ("succeeded", {"value": 1}, None)
    with db.read() as conn:
        assert set(conn.scalars(select(t.gateway_cache.c.key))) == {"live"}
    assert await runner.run_once() == 0  # once a period
    clock.advance(600)
    await runner.run_once()  # (the hourly pruning may come due too)
    purges = [row for row in _jobs(db) if row.kind == "gateway.cache.purge"]
    assert [row.state for row in purges] == ["succeeded", "succeeded"]


async def test_stopping_gives_running_jobs_back_without_spending_an_attempt(
    db: Database, clock: Clock
) -> None:
    started = asyncio.Event()

    async def slow(job: Job) -> WriteOp | None:
        started.set()
        await asyncio.Event().wait()  # never ends by itself
        return None

    handlers = Handlers()
    handlers.add("slow", slow)
    runner = Runner(db, handlers, clock=clock, poll=0.01)
    job_id = await runner.enqueue("slow")
    runner.start()
    await asyncio.wait_for(started.wait(), 30)
    assert _job(db, job_id).state == "running"
    await runner.stop(timeout=0)
    row = _job(db, job_id)
    assert (row.state, row.attempts) == ("queued", 0)


async def test_the_running_loop_picks_up_a_job_enqueued_while_it_waits(db: Database) -> None:
    done = asyncio.Event()

    async def quick(job: Job) -> WriteOp | None:
        done.set()
        return None

    handlers = Handlers()
    handlers.add("quick", quick)
    runner = Runner(db, handlers, poll=3600)  # only the wake-up of enqueue can start it
    runner.start()
    try:
        job_id = await runner.enqueue("quick")
        await asyncio.wait_for(done.wait(), 30)
    finally:
        await runner.stop()
    assert _job(db, job_id).state == "succeeded"


def test_a_kind_is_registered_once() -> None:
    async def nothing(job: Job) -> WriteOp | None:
        return None

    handlers = Handlers()
    handlers.add("k", nothing)
    with pytest.raises(ValueError, match="registered already"):
        handlers.add("k", nothing)
    with pytest.raises(ValueError, match="period"):
        handlers.add("p", nothing, every=0)


async def test_a_job_whose_lease_ran_out_while_it_ran_here_is_not_started_twice(
    db: Database, clock: Clock
) -> None:
    started, finish = asyncio.Event(), asyncio.Event()
    calls: list[int] = []

    async def slow(job: Job) -> WriteOp | None:
        calls.append(job.attempts)
        started.set()
        await finish.wait()
        return None

    handlers = Handlers()
    handlers.add("slow", slow)
    runner = Runner(db, handlers, clock=clock, lease=60)
    job_id = await runner.enqueue("slow")
    first = asyncio.get_running_loop().create_task(runner.run_once())
    await asyncio.wait_for(started.wait(), 30)
    clock.advance(61)  # as if the event loop had been stalled past the lease, renewals and all
    assert await runner._claim() == []  # claimed again (the lease renewed), not run a second time
    finish.set()
    assert await first == 1
    assert calls == [1] and _job(db, job_id).state == "succeeded"
