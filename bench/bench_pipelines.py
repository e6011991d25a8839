"""Benchmark of the pipeline engine's overhead per step, against calling the same prompt directly through
the gateway in the same run.

Starts the local fake provider and a real ``sightline serve`` (SQLite) forwarding to it, with the
project's cache off, saves prompt ``p1`` (``Say {a1}``) and two pipelines: ``p1(a)`` (one step) and
``p1(p1(p1(p1(a))))`` (four steps in a chain). Then, alternating, it times whole requests from one client:

* the baseline: ``POST /v1/chat/completions`` with the body the prompt renders to (one model call);
* ``POST /api/pipeline/call`` of each pipeline with a fresh argument.

The overhead per step is (pipeline's p50 - steps x baseline p50) / steps; the goal is at most 1 ms.

    .venv/bin/python bench/bench_pipelines.py [--calls 300]

Figures are printed, never asserted: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from tests.conftest import sightline_command, start_server, stop_server  # noqa: E402
from tests.fake_openai import FakeOpenAI  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    options = parser.parse_args()
    upstream = FakeOpenAI()
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        env = {**os.environ, "SIGHTLINE_DATABASE_URL": database_url}

        def cli(*args: str) -> str:
            done = subprocess.run(
                [*sightline_command(), *args], env=env, capture_output=True, text=True, check=True
            )
            return done.stdout.strip()

        key = cli("token", "create", "--project", "bench", "--environment", "dev").splitlines()[-1]
        cli("provider", "cache-mode", "--project", "bench", "skip")
        cli("functions", "sync")
        process, url = start_server(
            database_url,
            Path(tmp) / "server.log",
            env={"SIGHTLINE_UPSTREAM_URL": upstream.base_url, "SIGHTLINE_UPSTREAM_API_KEY": "sk-bench"},
        )
        try:
            http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
            http.post("/api/prompts", json={"name": "p1", "template": "Say {a1}", "model": "gpt-4o-mini"})
            one = http.post("/api/pipelines", json={"name": "one", "expression": "p1(a)"}).json()["id"]
            four = http.post(
                "/api/pipelines", json={"name": "four", "expression": "p1(p1(p1(p1(a))))"}
            ).json()["id"]
            timings: dict[str, list[float]] = {"direct": [], "one": [], "four": []}

            def timed(name: str, path: str, body: dict[str, object]) -> None:
                started = time.perf_counter()
                r = http.post(path, json=body)
                elapsed = time.perf_counter() - started
                r.raise_for_status()
                timings[name].append(elapsed)

            for i in range(options.calls + 20):
                text = f"call {i}"
                direct = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Say {text}"}]}
                timed("direct", "/v1/chat/completions", direct)
                timed("one", "/api/pipeline/call", {"pipeline_id": one, "args": {"a": text}})
                timed("four", "/api/pipeline/call", {"pipeline_id": four, "args": {"a": text}})
                if i == 19:  # warm-up done
                    for values in timings.values():
                        values.clear()
        finally:
            stop_server(process)
            upstream.close()
    p50 = {name: statistics.median(values) * 1e3 for name, values in timings.items()}
    p95 = {name: statistics.quantiles(values, n=20)[-1] * 1e3 for name, values in timings.items()}
    print(f"{options.calls} calls each, whole requests from one client (ms):")
    print(f"  gateway /v1/chat/completions (baseline)  p50 {p50['direct']:.2f}  p95 {p95['direct']:.2f}")
    print(f"  pipeline p1(a), 1 step                    p50 {p50['one']:.2f}  p95 {p95['one']:.2f}")
    print(f"  pipeline p1(p1(p1(p1(a)))), 4 steps       p50 {p50['four']:.2f}  p95 {p95['four']:.2f}")
    per_one = p50["one"] - p50["direct"]
    per_four = (p50["four"] - 4 * p50["direct"]) / 4
    print(
        f"engine overhead per step at p50: 1 step {per_one:.2f} ms, 4 steps {per_four:.2f} ms (goal <= 1 ms)"
    )
    print(f"ratio pipeline(1 step) / gateway call: {p50['one'] / p50['direct']:.2f}x")


if __name__ == "__main__":
    main()
