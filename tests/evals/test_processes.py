"""Evaluation across real processes: a backfill in a ``sightline worker`` killed half-way resumes in
another and scores every generation once; ``sightline eval run`` and ``sightline dataset export``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import sightline_command, start_server, stop_server
from tests.server.test_datasets import check_chat_line
from tests.server.test_ingest import generation


class Deployment:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.database_url = f"sqlite:///{tmp / 'sightline.db'}"
        self.env = {**os.environ, "SIGHTLINE_DATABASE_URL": self.database_url}
        self.key = self.cli(
            "token", "create", "--project", "demo", "--environment", "dev"
        ).stdout.splitlines()[-1]

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*sightline_command(), *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )

    def worker(self, n: int) -> subprocess.Popen[bytes]:
        env = {
            **self.env,
            "SIGHTLINE_EVAL_BATCH": "10",
            "SIGHTLINE_JOB_LEASE_SECONDS": "2",
            "SIGHTLINE_JOB_POLL_SECONDS": "0.2",
        }
        log = (self.tmp / f"worker{n}.log").open("wb")
        return subprocess.Popen(
            [*sightline_command(), "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
        )


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[tuple[Deployment, httpx.Client]]:
    made = Deployment(tmp_path)
    # The server answers; the jobs run in the workers the test starts and kills.
    process, url = start_server(
        made.database_url, tmp_path / "server.log", env={"SIGHTLINE_JOBS_IN_SERVE": "false"}
    )
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {made.key}"}, timeout=30) as http:
            yield made, http
    finally:
        stop_server(process)


def _seed(http: httpx.Client, n: int) -> list[dict[str, Any]]:
    gens = [generation(id=str(uuid.uuid4()), output={"content": "x" * (i % 200)}) for i in range(n)]
    for i in range(0, n, 500):
        batch = [{"type": "generation", "body": g} for g in gens[i : i + 500]]
        assert http.post("/api/ingest", json={"batch": batch}).status_code == 200
    return gens


def _job(http: httpx.Client, job_id: int) -> dict[str, Any]:
    return dict(http.get(f"/api/jobs/{job_id}").json())


def test_a_killed_backfill_resumes_and_scores_everything_once(
    deployment: tuple[Deployment, httpx.Client],
) -> None:
    made, http = deployment
    _seed(http, 1000)
    assert (
        http.post(
            "/api/evaluators", json={"name": "short", "type": "length", "config": {"max": 100}}
        ).status_code
        == 201
    )
    job_id = http.post("/api/evaluators/short/run", json={"filter": {}}).json()["jobId"]
    first = made.worker(1)
    try:
        deadline = time.monotonic() + 60
        while (_job(http, job_id)["done"] or 0) < 100:
            assert time.monotonic() < deadline, _job(http, job_id)
            time.sleep(0.02)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    stopped = _job(http, job_id)
    assert stopped["status"] == "running" and stopped["done"] < 1000, stopped
    second = made.worker(2)
    try:
        deadline = time.monotonic() + 60
        while _job(http, job_id)["status"] != "succeeded":
            assert time.monotonic() < deadline, _job(http, job_id)
            time.sleep(0.2)
    finally:
        second.terminate()
        second.wait(15)
    done = _job(http, job_id)
    assert (done["done"], done["total"], done["errors"]) == (1000, 1000, 0)
    assert done["attempts"] == 2  # the killed worker's attempt, then the one that finished
    given = http.get("/api/evaluators/short").json()["lastDay"]["evaluations"]
    assert given == 1000  # nothing scored twice, nothing skipped
    failing = http.post(
        "/api/generations/aggregate",
        json={"pipeline": [{"$match": {"scores.short": "fail"}}, {"$count": "n"}]},
    )
    assert failing.json()["data"] == [{"n": 495}]  # outputs of 101 to 199 characters


def test_the_cli_runs_an_evaluator_and_exports_a_dataset(
    deployment: tuple[Deployment, httpx.Client], tmp_path: Path
) -> None:
    made, http = deployment
    gens = _seed(http, 30)
    http.post("/api/evaluators", json={"name": "short", "type": "length", "config": {"max": 10}})
    done = made.cli(
        "eval", "run", "--project", "demo", "--evaluator", "short", "--filter", '{"model.id": "gpt-4o"}'
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["status"], result["done"], result["total"]) == ("succeeded", 30, 30)
    assert "short v1 over 30 generations" in done.stderr
    assert http.get(f"/api/generations/{gens[0]['id']}").json()["scores"]["short"]["label"] == "pass"
    bad = made.cli("eval", "run", "--project", "demo", "--evaluator", "short", "--filter", '{"$where": 1}')
    assert bad.returncode == 1 and "filter" in bad.stderr
    http.post(
        "/api/datasets", json={"name": "ft", "fromFilter": {"output.content": {"$regex": "x"}}, "limit": 5}
    )
    out = tmp_path / "ft.jsonl"
    exported = made.cli(
        "dataset", "export", "ft", "--project", "demo", "--format", "openai-chat", "-o", str(out)
    )
    assert exported.returncode == 0, exported.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5 and all(check_chat_line(x) for x in lines)
    listed = made.cli("dataset", "list", "--project", "demo")
    assert "ft" in listed.stdout and "5 items" in listed.stdout
