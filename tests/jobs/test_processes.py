"""Runners in separate processes on one database, on SQLite and PostgreSQL: claims without doubles, and
the job of a worker that was killed runs again once its lease has run out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from sightline.jobs import Handlers, Runner
from sightline.store import Database
from sightline.store import tables as t
from sightline.store.engine.writer import WriteOp
from sightline.store.jobs import Enqueue, Job

from .conftest import Clock

SCRIPT = Path(__file__).with_name("worker_script.py")


def _start(mode: str, database_url: str, folder: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(SCRIPT), mode, database_url, str(folder)])


def _wait_for(condition: object, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def test_two_processes_claim_every_job_once(database_url: str, tmp_path: Path) -> None:
    db = Database(database_url)
    db.start()
    try:
        now = int(time.time() * 1_000_000)
        ids = [db.writer.write_sync(Enqueue("work", {"n": n}, now, 3)) for n in range(200)]
        workers = [_start("drain", database_url, tmp_path) for _ in range(2)]
        _wait_for(lambda: len(list(tmp_path.glob("ready-*"))) == 2, "both workers to start")
        (tmp_path / "go").touch()
        for worker in workers:
            assert worker.wait(120) == 0
        runs = [[int(line) for line in path.read_text().split()] for path in tmp_path.glob("ran-*")]
        counts = Counter(job_id for ran in runs for job_id in ran)
        assert sorted(counts) == sorted(ids)
        assert set(counts.values()) == {1}, "a job ran twice"
        assert len(runs) == 2 and all(runs), "both processes claimed jobs"
        with db.read() as conn:
            assert set(conn.scalars(select(t.jobs.c.state))) == {"succeeded"}
    finally:
        db.close()


async def test_the_job_of_a_killed_worker_runs_again_once_its_lease_has_run_out(
    database_url: str, tmp_path: Path
) -> None:
    db = Database(database_url)
    db.start()
    try:
        ran: list[Job] = []

        async def work(job: Job) -> WriteOp | None:
            ran.append(job)
            return None

        handlers = Handlers()
        handlers.add("work", work)
        here = Runner(db, handlers, lease=60)
        job_id = await here.enqueue("work", {"n": 1})
        worker = _start("hang", database_url, tmp_path)
        _wait_for(lambda: (tmp_path / "claimed").exists(), "the worker to claim the job")
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(30)

        assert await here.run_once() == 0  # still leased to the dead worker
        later = Runner(db, handlers, lease=60, clock=Clock(time.time() + 61))
        assert await later.run_once() == 1
        assert [(job.id, job.attempts) for job in ran] == [(job_id, 2)]
        with db.read() as conn:
            row = conn.execute(select(t.jobs).where(t.jobs.c.id == job_id)).one()
        assert (row.state, row.worker) == ("succeeded", later.worker)
    finally:
        db.close()
