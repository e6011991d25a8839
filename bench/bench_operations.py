"""Operations figures (the team-operations issue), each beside a baseline measured in the same run.

    .venv/bin/python bench/bench_operations.py                  # 1,000,000 rows
    .venv/bin/python bench/bench_operations.py --rows 200000 --only limits

* ``backup``: ``sightline backup`` (SQLite's online backup API) of a ``--rows`` SQLite file while a
  real ``sightline serve`` takes ingest: seconds, and the ingest rate meanwhile against the rate
  without it (same server, just before).
* ``retention``: ``sightline retention run`` deleting every one of those (expired) generations while
  ingest runs: total time, and the ingest rate during the deletion against the rate without it
  (goal: at least 0.70).
* ``limits``: the gateway with a project's rate limit on (far away: a billion a minute) against a
  project without, alternating single requests to the local fake provider: the p50 added
  (goal: at most 0.1 ms).

Ingest is batches of 100 from 4 connections. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.conftest import sightline_command, stop_server  # noqa: E402
from tests.fake_openai import FakeOpenAI  # noqa: E402

from bench.bench_server import ingest_requests, load_rows, start  # noqa: E402
from bench.loadgen import run  # noqa: E402


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SIGHTLINE_DATABASE_URL": url}
    return subprocess.run([*sightline_command(), *args], env=env, capture_output=True, text=True, check=True)


class Load:
    """Ingest from 4 connections in a thread until stopped; the rate of a stretch is asked for."""

    def __init__(self, port: int, key: str) -> None:
        self.port, self.key = port, key
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        seed = 0
        while not self._stop.is_set():
            feed = ingest_requests(self.key, 20, 100, seed=seed)
            seed += 1
            result = asyncio.run(run("127.0.0.1", self.port, feed, connections=4, total=len(feed)))
            self.sent += 100 * (result.requests - result.errors)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def rate_over(self, seconds: float) -> float:
        before, started = self.sent, time.perf_counter()
        time.sleep(seconds)
        return (self.sent - before) / (time.perf_counter() - started)


def bench_backup_and_retention(tmp: Path, rows: int, only: str | None) -> None:
    url = f"sqlite:///{tmp / 'ops.db'}"
    key = (
        cli(url, "token", "create", "--project", "bench", "--environment", "prod")
        .stdout.strip()
        .splitlines()[-1]
    )
    print(f"loading {rows:,} generations (30 days, all past the retention) ...", flush=True)
    load_rows(url, 1, rows)
    os.environ["SIGHTLINE_DATABASE_URL"] = url
    process, port = start(url, tmp / "server.log")
    try:
        with Load(port, key) as load:
            time.sleep(2)
            if only in (None, "backup"):
                quiet = load.rate_over(8)
                started = time.perf_counter()
                holder: dict[str, float] = {}

                def take() -> None:
                    cli(url, "backup", str(tmp / "backups"))
                    holder["seconds"] = time.perf_counter() - started

                worker = threading.Thread(target=take)
                worker.start()
                during = load.rate_over(3)
                worker.join()
                size = sum(p.stat().st_size for p in (tmp / "backups").iterdir()) / 2**20
                print(f"online backup of {rows:,} generations ({size:,.0f} MiB): {holder['seconds']:.1f} s")
                print(
                    f"  ingest without it {quiet:,.0f} gen/s, during it {during:,.0f} gen/s,"
                    f" ratio {during / quiet:.2f}"
                )
            if only in (None, "retention"):
                cli(url, "retention", "set", "--project", "bench", "--delete-after", "1")
                quiet = load.rate_over(8)
                started = time.perf_counter()
                runner = subprocess.Popen(
                    [*sightline_command(), "retention", "run"],
                    env={**os.environ, "SIGHTLINE_DATABASE_URL": url},
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
                samples = []
                while runner.poll() is None:
                    samples.append(load.rate_over(2))
                total = time.perf_counter() - started
                out = runner.stdout.read() if runner.stdout else ""
                during = statistics.fmean(samples) if samples else float("nan")
                print(
                    f"retention deleting {rows:,} expired generations: {total:.1f} s ({rows / total:,.0f}/s)"
                    f" {out.strip()[:160]}"
                )
                print(
                    f"  ingest without it {quiet:,.0f} gen/s, during it {during:,.0f} gen/s,"
                    f" ratio {during / quiet:.2f} (goal >= 0.70)"
                )
    finally:
        stop_server(process)


def bench_limits(tmp: Path, requests: int) -> None:
    upstream = FakeOpenAI()
    url = f"sqlite:///{tmp / 'limits.db'}"
    limited = cli(url, "token", "create", "--project", "limited").stdout.strip().splitlines()[-1]
    free = cli(url, "token", "create", "--project", "free").stdout.strip().splitlines()[-1]
    for project in ("limited", "free"):
        cli(url, "provider", "cache-mode", "--project", project, "skip")
    cli(url, "limits", "set", "--project", "limited", "--requests-per-minute", "1000000000")
    os.environ.update(SIGHTLINE_UPSTREAM_URL=upstream.base_url, SIGHTLINE_UPSTREAM_API_KEY="sk-bench")
    process, port = start(url, tmp / "limits.log")
    times: dict[str, list[float]] = {"off": [], "on": []}
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            for i in range(requests + 50):
                for name, key in (("off", free), ("on", limited)):
                    started = time.perf_counter()
                    r = http.post(
                        "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
                    )
                    elapsed = time.perf_counter() - started
                    assert r.status_code == 200, r.text
                    if i >= 50:
                        times[name].append(elapsed * 1000)
    finally:
        stop_server(process)
        upstream.close()
    off, on = statistics.median(times["off"]), statistics.median(times["on"])
    print(f"gateway, {requests} requests each, alternating (whole requests, ms):")
    print(f"  no limit (baseline)        p50 {off:.3f}")
    print(
        f"  a limit far away           p50 {on:.3f}   added {on - off:+.3f} ms (goal <= 0.1)"
        f"   ratio {on / off:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["backup", "retention", "limits"])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=2000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if options.only in (None, "limits"):
            bench_limits(Path(tmp), options.requests)
        if options.only in (None, "backup", "retention"):
            bench_backup_and_retention(Path(tmp), options.rows, options.only)


if __name__ == "__main__":
    main()
