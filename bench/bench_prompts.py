"""Benchmark of ``client.prompts.get`` from the warm cache, against a plain dict lookup in the same run.

Starts a real ``sightline serve`` on a temporary SQLite file, saves a prompt through the API, fetches
it once (the cold fetch: one request, timed too), then times ``--calls`` warm calls of
``client.prompts.get(name, label=...)`` and of ``client.prompts.get(name)``, in ``--rounds`` rounds,
each beside a baseline of the same number of ``dict.get`` lookups of a tuple key (what a cache
cannot do less than). Prints the best round's time per call and the ratio to the baseline; the goal
is at most 5 µs a call.

    .venv/bin/python bench/bench_prompts.py [--rounds 7] [--calls 200000]

Figures are printed, never asserted: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from tests.conftest import stop_server  # noqa: E402

import sightline  # noqa: E402
from bench.bench_sdk import _server  # noqa: E402


def _per_call_us(fn: object, calls: int) -> float:
    run = fn  # a local name: the loop below is all that is timed
    started = time.perf_counter()
    for _ in range(calls):
        run()  # type: ignore[operator]
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200_000)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        process, url, key = _server(Path(tmp))
        try:
            http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"})
            http.post("/api/prompts", json={"name": "bench", "template": "Hello {who}"}).raise_for_status()
            http.post(
                "/api/prompts/bench/labels", json={"label": "production", "version": 1}
            ).raise_for_status()
            config = sightline.SightlineConfig(api_key=key, server_url=url, prompt_cache_ttl=3600)
            client = sightline.Client(api_key="sk-unused", base_url="http://127.0.0.1:9/v1", sightline=config)

            started = time.perf_counter()
            client.prompts.get("bench", label="production")
            cold_ms = (time.perf_counter() - started) * 1e3
            client.prompts.get("bench")

            table = {("bench", "production", None): object()}
            get = client.prompts.get

            def labelled() -> object:
                return get("bench", label="production")

            def latest() -> object:
                return get("bench")

            def baseline() -> object:
                return table.get(("bench", "production", None))

            rows: dict[str, list[float]] = {"dict.get baseline": [], "get(label=)": [], "get(latest)": []}
            for _ in range(options.rounds):
                rows["dict.get baseline"].append(_per_call_us(baseline, options.calls))
                rows["get(label=)"].append(_per_call_us(labelled, options.calls))
                rows["get(latest)"].append(_per_call_us(latest, options.calls))
        finally:
            stop_server(process)

    base = min(rows["dict.get baseline"])
    print(f"cold fetch (one request to a local server): {cold_ms:.2f} ms")
    print(f"{'warm, per call (best of rounds)':34} {'µs':>8} {'x baseline':>11}")
    for name, values in rows.items():
        best = min(values)
        print(f"{name:34} {best:8.3f} {best / base:11.1f}")
    print("goal: get(...) from the warm cache at most 5 µs a call")


if __name__ == "__main__":
    main()
