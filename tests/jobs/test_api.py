"""``GET /api/jobs/{id}``: a job of the key's project, through the real app; and the purge job run by
``sightline worker`` and by ``sightline serve`` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from sqlalchemy import create_engine, select

from sightline.store import tables as t
from sightline.store.gateway.cache import StoreResponse
from sightline.store.jobs import Enqueue

from ..conftest import Api, sightline_command, start_server, stop_server


def _project_id(api: Api, name: str) -> int:
    with api.db.read() as conn:
        return int(conn.scalar(select(t.projects.c.id).where(t.projects.c.name == name)))


async def test_a_job_is_shown_to_a_key_of_its_project_only(api: Api) -> None:
    other_key = api.new_key("other")
    now = int(time.time() * 1_000_000)
    job_id = api.db.writer.write_sync(
        Enqueue("evaluate", {"evaluator": "e1"}, now, 3, _project_id(api, "demo"))
    )
    installation = api.db.writer.write_sync(Enqueue("gateway.cache.purge", {}, now, 1))

    answer = await api.http.get(f"/api/jobs/{job_id}")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["id"], body["kind"], body["state"], body["attempts"], body["maxAttempts"]) == (
        job_id,
        "evaluate",
        "queued",
        0,
        3,
    )
    assert body["payload"] == {"evaluator": "e1"} and body["result"] is None and body["dueAt"].endswith("Z")

    for path, key, status in (
        (f"/api/jobs/{job_id}", other_key, 404),  # another project's job is not there for this key
        (f"/api/jobs/{installation}", api.key, 404),  # nor one of the installation's own
        ("/api/jobs/999999", api.key, 404),
        ("/api/jobs/99999999999999999999999", api.key, 404),
        ("/api/jobs/" + "9" * 5000, api.key, 404),
        ("/api/jobs/abc", api.key, 400),
        ("/api/jobs/-1", api.key, 400),
    ):
        answer = await api.http.get(path, headers=api.headers(key))
        assert answer.status_code == status, path
        assert set(answer.json()["error"]) >= {"type", "message"}
    assert (
        await api.http.get(f"/api/jobs/{job_id}", headers={"Authorization": "Bearer nope"})
    ).status_code == 401


def _expired_entry(database_url: str) -> None:
    engine = create_engine(database_url)
    with engine.begin() as conn:
        StoreResponse(1, "old", "chat/completions", "m", "{}", 0, 1).apply(conn)
    engine.dispose()


def _purged(database_url: str) -> bool:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            left = conn.scalars(select(t.gateway_cache.c.key)).all()
            states = conn.scalars(select(t.jobs.c.state).where(t.jobs.c.kind == "gateway.cache.purge")).all()
    finally:
        engine.dispose()
    return not left and "succeeded" in states


def _wait_until(condition: object, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the purge job did not run"
        time.sleep(0.1)


def test_sightline_worker_runs_the_cache_purge_job(database_url: str, tmp_path: Path) -> None:
    _expired_entry(database_url)
    env = {
        **os.environ,
        "SIGHTLINE_DATABASE_URL": database_url,
        "SIGHTLINE_HOME": str(tmp_path),
        "SIGHTLINE_CACHE_PURGE_SECONDS": "1",
    }
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [*sightline_command(), "worker"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    try:
        _wait_until(lambda: _purged(database_url))
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(30)
    assert code == 0, log.read_text()


def test_sightline_serve_runs_the_cache_purge_job_unless_told_not_to(sqlite_url: str, tmp_path: Path) -> None:
    from sightline.store import migrate

    engine = create_engine(sqlite_url)
    migrate(engine)
    engine.dispose()
    _expired_entry(sqlite_url)
    quiet = {
        "SIGHTLINE_HOME": str(tmp_path),
        "SIGHTLINE_CACHE_PURGE_SECONDS": "1",
        "SIGHTLINE_JOBS_IN_SERVE": "false",
    }
    process, _ = start_server(sqlite_url, tmp_path / "quiet.log", env=quiet)
    try:
        time.sleep(2)  # two purge periods: nothing may run (no assertion on how long anything takes)
        assert not _purged(sqlite_url)
    finally:
        stop_server(process)
    process, _ = start_server(
        sqlite_url, tmp_path / "serve.log", env={**quiet, "SIGHTLINE_JOBS_IN_SERVE": "true"}
    )
    try:
        _wait_until(lambda: _purged(sqlite_url))
    finally:
        stop_server(process)
