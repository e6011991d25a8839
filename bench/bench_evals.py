"""Evaluation figures (the evaluations issue), each beside a baseline measured in the same run.

    .venv/bin/python bench/bench_evals.py                    # all three, 1,000,000 rows for the filter
    .venv/bin/python bench/bench_evals.py --only filter --rows 200000

* ``ingest``: two ``sightline serve`` processes (SQLite), one with no evaluator and one with two rule
  evaluators (``json_valid`` and ``length``) attached to every generation, evaluating online every
  0.2 s in the same process. Alternating rounds, each server takes batches of 100 generations from 8
  connections; the ratio is the rate with evaluators over the rate without (goal: at least 0.90). The
  servers' CPU seconds (process and children: the writer process) are printed too, and how long the
  evaluators took to catch up once the load stopped.
* ``rate``: rule evaluations per second in the background: generations are ingested into a server
  that runs no jobs, then it is started again with jobs on; the time from that start until both
  evaluators have scored every generation gives evaluations/s (goal: at least 5,000/s). Then both
  evaluators are run again over every generation as backfills (``POST /api/evaluators/{name}/run``),
  timed from the request until both jobs have succeeded. Baseline: the ingest rate of the same
  generations.
* ``filter``: ``--rows`` generations written through the store, a fifth of them with a
  ``helpfulness`` score; whole requests ``POST /api/generations/query {"scores.helpfulness": {"$lt":
  0.5}}`` and ``GET /api/generations?scores.helpfulness.max=0.5``, p95 (goal: under 50 ms), beside the
  plain ``GET /api/generations`` list, alternating.

Figures are printed, never asserted: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.conftest import sightline_command, stop_server  # noqa: E402

from bench.bench_server import ingest_requests, load_rows, start  # noqa: E402
from bench.loadgen import run  # noqa: E402
from sightline.store import Database  # noqa: E402
from sightline.store import tables as t  # noqa: E402
from sightline.store.evals.scores import write_scores  # noqa: E402

RULES = [
    {"name": "valid-json", "type": "json_valid", "filter": {}},
    {"name": "short", "type": "length", "config": {"max": 1000}, "filter": {}},
]


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process and its children (the writer process), in seconds."""
    total = 0.0
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    for child in children:
        total += cpu_seconds(int(child))
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return total
    return total + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """A ``sightline serve`` on its own SQLite file, with a key."""

    def __init__(self, tmp: Path, name: str, env: dict[str, str]) -> None:
        self.dir = tmp / name
        self.dir.mkdir()
        self.url = f"sqlite:///{self.dir / 'bench.db'}"
        self.env = env
        made = subprocess.run(
            [*sightline_command(), "token", "create", "--project", "bench", "--environment", "prod"],
            env={**os.environ, "SIGHTLINE_DATABASE_URL": self.url},
            capture_output=True,
            text=True,
            check=True,
        )
        self.key = made.stdout.strip().splitlines()[-1]
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self, **env: str) -> None:
        saved = dict(os.environ)
        os.environ.update({**self.env, **env})
        try:
            self.process, self.port = start(self.url, self.dir / "server.log")
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def stop(self) -> None:
        if self.process is not None:
            stop_server(self.process)
            self.process = None

    def http(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.key}"}
        return httpx.Client(base_url=f"http://127.0.0.1:{self.port}", headers=headers, timeout=60)

    def evaluations(self) -> list[int]:
        """Scores each of ``RULES`` has given in the last day."""
        with self.http() as http:
            return [
                int(http.get(f"/api/evaluators/{rule['name']}").json()["lastDay"]["evaluations"])
                for rule in RULES
            ]


def _ingest(server: Server, feed: list[bytes]) -> float:
    result = asyncio.run(run("127.0.0.1", server.port, feed, connections=8, total=len(feed)))
    assert not result.errors and set(result.statuses) == {200}, result.statuses
    return result.seconds


def bench_ingest(tmp: Path, rounds: int, batches: int) -> None:
    env = {"SIGHTLINE_EVAL_POLL_SECONDS": "0.2", "SIGHTLINE_LOG_LEVEL": "warning"}
    plain, judged = Server(tmp, "plain", env), Server(tmp, "judged", env)
    plain.start()
    judged.start()
    try:
        with judged.http() as http:
            for rule in RULES:
                assert http.post("/api/evaluators", json=rule).status_code == 201
        seconds = {"plain": 0.0, "judged": 0.0}
        cpu = {"plain": 0.0, "judged": 0.0}
        sent = 0
        for r in range(rounds):
            for name, server in (("plain", plain), ("judged", judged)):
                feed = ingest_requests(server.key, batches, 100, seed=r * 2 + (name == "judged"))
                assert server.process is not None
                before = cpu_seconds(server.process.pid)
                seconds[name] += _ingest(server, feed)
                cpu[name] += cpu_seconds(server.process.pid) - before
            sent += batches * 100
        stopped = time.perf_counter()
        while min(judged.evaluations()) < sent:
            time.sleep(0.2)
        caught_up = time.perf_counter() - stopped
    finally:
        plain.stop()
        judged.stop()
    rate = {name: sent / s for name, s in seconds.items()}
    print(f"ingest, {rounds} rounds x {batches} batches of 100 from 8 connections, alternating:")
    print(
        f"  no evaluator (baseline)           {rate['plain']:>10,.0f} gen/s   server CPU {cpu['plain']:.1f} s"
    )
    print(
        f"  two rule evaluators, online       {rate['judged']:>10,.0f} gen/s"
        f"   server CPU {cpu['judged']:.1f} s"
    )
    print(
        f"  ratio {rate['judged'] / rate['plain']:.2f} (goal >= 0.90);"
        f" the evaluators caught up {caught_up:.1f} s after the load"
    )


def bench_rate(tmp: Path, count: int) -> None:
    server = Server(tmp, "rate", {"SIGHTLINE_LOG_LEVEL": "warning"})
    server.start(SIGHTLINE_JOBS_IN_SERVE="false")
    try:
        with server.http() as http:
            for rule in RULES:
                assert http.post("/api/evaluators", json=rule).status_code == 201
        feed = ingest_requests(server.key, count // 100, 100, seed=99)
        ingest_seconds = _ingest(server, feed)
    finally:
        server.stop()
    # The clock starts before the process does: evaluation may begin before /healthz first answers.
    started = time.perf_counter()
    server.start(
        SIGHTLINE_JOBS_IN_SERVE="true", SIGHTLINE_EVAL_POLL_SECONDS="0.2", SIGHTLINE_JOB_POLL_SECONDS="0.2"
    )
    try:
        ready = time.perf_counter() - started
        at_ready = sum(server.evaluations())
        while min(server.evaluations()) < count:
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        with server.http() as http:
            backfill_started = time.perf_counter()
            jobs = [
                http.post(f"/api/evaluators/{rule['name']}/run", json={"filter": {}}).json()["jobId"]
                for rule in RULES
            ]
            for job in jobs:
                while (state := http.get(f"/api/jobs/{job}").json())["status"] != "succeeded":
                    assert state["status"] in ("queued", "running"), state
                    time.sleep(0.1)
                assert state["done"] == count, state
            backfill = time.perf_counter() - backfill_started
    finally:
        server.stop()
    evaluations = len(RULES) * count
    print(f"rule evaluations in the background, {count:,} generations x {len(RULES)} evaluators:")
    print(f"  ingest of the same generations (baseline)  {count / ingest_seconds:>10,.0f} gen/s")
    print(
        f"  online evaluation                          {evaluations / elapsed:>10,.0f} evaluations/s"
        f" (goal >= 5,000/s; {elapsed:.1f} s from process start, {ready:.1f} s of it starting up)"
    )
    after_ready = (evaluations - at_ready) / (elapsed - ready)
    print(f"    the same, once the server answers        {after_ready:>10,.0f} evaluations/s")
    print(
        f"  backfill, both evaluators at once          {evaluations / backfill:>10,.0f} evaluations/s"
        f" ({backfill:.1f} s from the requests until both jobs succeeded)"
    )
    ratio = (evaluations / elapsed) / (count / ingest_seconds)
    print(f"  ratio online evaluations/s to ingested gen/s: {ratio:.2f}")


def bench_filter(tmp: Path, rows: int, requests: int) -> None:
    server = Server(tmp, "filter", {"SIGHTLINE_LOG_LEVEL": "warning", "SIGHTLINE_JOBS_IN_SERVE": "false"})
    db = Database(server.url)
    with db.engine.connect() as conn:
        project_id = int(conn.scalar(t.projects.select().with_only_columns(t.projects.c.id)) or 1)
    db.engine.dispose()
    print(f"filter by a score: loading {rows:,} generations through the store ...", flush=True)
    load_rows(server.url, project_id, rows)
    db = Database(server.url)
    rng = random.Random(5)
    with db.engine.begin() as conn:
        ids = [r[0] for r in conn.execute(t.generations.select().with_only_columns(t.generations.c.id))]
    scored = rng.sample(ids, len(ids) // 5)
    for i in range(0, len(scored), 5000):
        score_rows = [
            {
                "project_id": project_id,
                "environment": "prod",
                "generation_id": gen_id,
                "run_id": None,
                "name": "helpfulness",
                "value": rng.random(),
                "label": None,
                "comment": None,
                "source": "llm",
                "evaluator_id": None,
                "evaluator_version": None,
                "error": None,
                "ts_us": int(time.time() * 1e6),
                "body": {},
            }
            for gen_id in scored[i : i + 5000]
        ]
        with db.engine.begin() as conn:
            write_scores(conn, score_rows)
    with db.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
    db.engine.dispose()
    server.start()
    queries = {
        "plain list (baseline)": ("GET", "/api/generations?limit=50", None),
        "query scores.helpfulness < 0.5": (
            "POST",
            "/api/generations/query",
            {"filter": {"scores.helpfulness": {"$lt": 0.5}}, "limit": 50},
        ),
        "list ?scores.helpfulness.max=0.5": (
            "GET",
            "/api/generations?scores.helpfulness.max=0.5&limit=50",
            None,
        ),
    }
    timings: dict[str, list[float]] = {name: [] for name in queries}
    try:
        with server.http() as http:
            for i in range(requests + 10):
                for name, (method, path, body) in queries.items():
                    started = time.perf_counter()
                    r = http.request(method, path, json=body)
                    elapsed = time.perf_counter() - started
                    assert r.status_code == 200 and len(r.json()["data"]) == 50, r.text[:300]
                    if i >= 10:
                        timings[name].append(elapsed * 1000)
    finally:
        server.stop()
    base = statistics.quantiles(timings["plain list (baseline)"], n=20)[-1]
    print(f"filter by a score over {rows:,} generations ({len(scored):,} scored), {requests} requests each:")
    for name, values in timings.items():
        p95 = statistics.quantiles(values, n=20)[-1]
        print(
            f"  {name:<36} p50 {statistics.median(values):6.1f} ms"
            f"   p95 {p95:6.1f} ms   ratio {p95 / base:.2f}"
        )
    print("  goal: p95 under 50 ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["ingest", "rate", "filter"])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--batches", type=int, default=150, help="batches of 100 per server and round")
    parser.add_argument("--count", type=int, default=50_000, help="generations for the rate")
    parser.add_argument("--requests", type=int, default=200)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if options.only in (None, "ingest"):
            bench_ingest(Path(tmp), options.rounds, options.batches)
        if options.only in (None, "rate"):
            bench_rate(Path(tmp), options.count)
        if options.only in (None, "filter"):
            bench_filter(Path(tmp), options.rows, options.requests)


if __name__ == "__main__":
    main()
