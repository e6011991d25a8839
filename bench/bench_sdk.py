"""Benchmark of the SDK's cost on the caller: sightline.Client against plain openai.OpenAI.

Runs in one process against a local OpenAI-compatible server (``tests/fake_openai.py`` in a child
process, or ``--upstream-url``) and a real ``sightline serve`` on a temporary SQLite file, and prints
every figure next to its baseline measured in the same run:

1. 2,000 sequential chat calls, plain and Sightline alternating: added median per call (µs) and as
   a share of the plain call; then the same with the Sightline server down.
2. Streams: added time to the first chunk.
3. 10,000 calls from 16 threads: how many reached the server (none may be dropped).
4. What redaction (``redact_pii=True``) costs per record on the exporter thread.

    .venv/bin/python bench/bench_sdk.py [--calls 2000] [--threads 16] [--thread-calls 10000]

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
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import openai  # noqa: E402
from tests.fake_openai import FakeOpenAI  # noqa: E402

import sightline  # noqa: E402
from sightline.sdk import _worker  # noqa: E402

MESSAGES = [
    {"role": "system", "content": "You answer with one emoji."},
    {"role": "user", "content": "Show me an emoji for the sport: soccer"},
]


def _server(tmp: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    from tests.conftest import sightline_command, start_server

    database_url = f"sqlite:///{tmp / 'bench.db'}"
    env = {**os.environ, "SIGHTLINE_DATABASE_URL": database_url}
    made = subprocess.run(
        [*sightline_command(), "token", "create", "--project", "bench", "--environment", "dev"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    process, url = start_server(database_url, tmp / "server.log")
    return process, url, made.stdout.strip().splitlines()[-1]


def _median_us(values: list[float]) -> float:
    return statistics.median(values) * 1e6


def _alternate(plain: Callable[[], Any], traced: Callable[[], Any], calls: int) -> tuple[float, float]:
    """Median seconds of each, calls made alternately so both see the same machine."""
    for _ in range(100):
        plain(), traced()
    times: tuple[list[float], list[float]] = ([], [])
    clock = time.perf_counter
    for i in range(calls):
        which = i % 2
        fn = traced if which else plain
        started = clock()
        fn()
        times[which].append(clock() - started)
    return _median_us(times[0]), _median_us(times[1])


def _report(title: str, plain_us: float, traced_us: float, goal: str) -> None:
    added = traced_us - plain_us
    share = added / plain_us * 100
    print(
        f"{title}\n  plain openai {plain_us:9.1f} µs   sightline {traced_us:9.1f} µs   "
        f"added {added:+7.1f} µs, ratio {traced_us / plain_us:.4f} ({share:+.2f}%; goal {goal})"
    )


def bench_sequential(upstream: str, server_url: str, key: str, calls: int, title: str) -> None:
    _worker.reset()
    plain = openai.OpenAI(api_key="k", base_url=upstream)
    traced = sightline.Client(
        api_key="k",
        base_url=upstream,
        sightline=sightline.SightlineConfig(api_key=key, server_url=server_url),
    )
    p, t = _alternate(
        lambda: plain.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES),  # type: ignore[arg-type]
        lambda: traced.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES),  # type: ignore[arg-type]
        calls,
    )
    _report(title, p, t, "≤ 50 µs and ≤ 5%")
    delivered = sightline.flush(10)
    s = sightline.stats()
    print(
        f"  delivered: {delivered}; sent {s.sent}, queued {s.queued}, dropped {s.dropped}, failed {s.failed}"
    )
    _worker.reset(timeout=0.1)


def bench_stream(upstream: str, server_url: str, key: str, calls: int) -> None:
    _worker.reset()
    plain = openai.OpenAI(api_key="k", base_url=upstream)
    traced = sightline.Client(
        api_key="k",
        base_url=upstream,
        sightline=sightline.SightlineConfig(api_key=key, server_url=server_url),
    )
    first: tuple[list[float], list[float]] = ([], [])

    def one(client: openai.OpenAI, sink: list[float] | None) -> None:
        started = time.perf_counter()
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        for n, _ in enumerate(stream):
            if n == 0 and sink is not None:
                sink.append(time.perf_counter() - started)

    for _ in range(50):
        one(plain, None), one(traced, None)
    for i in range(calls):
        one(traced if i % 2 else plain, first[i % 2])
    _report(
        f"Streams, time to first chunk ({calls} streams)",
        _median_us(first[0]),
        _median_us(first[1]),
        "≤ 100 µs",
    )
    sightline.flush(10)
    _worker.reset(timeout=0.1)


def bench_threads(upstream: str, server_url: str, key: str, calls: int, threads: int) -> None:
    _worker.reset()
    traced = sightline.Client(
        api_key="k",
        base_url=upstream,
        sightline=sightline.SightlineConfig(api_key=key, server_url=server_url),
    )
    chat_id = f"bench-{uuid.uuid4().hex[:8]}"

    def call(_: int) -> None:
        traced.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            sightline={"chat_id": chat_id},  # type: ignore[arg-type]
        )

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(call, range(calls)))
    elapsed = time.perf_counter() - started
    flushed_at = time.perf_counter()
    delivered = sightline.flush(60)
    flush_s = time.perf_counter() - flushed_at
    s = sightline.stats()
    stored = 0
    with httpx.Client(base_url=server_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        cursor = None
        while True:
            params = {"chatId": chat_id, "limit": "1000", **({"cursor": cursor} if cursor else {})}
            page = http.get("/api/generations", params=params).json()
            stored += len(page["data"])
            cursor = page.get("nextCursor")
            if not cursor:
                break
    print(
        f"{calls} calls from {threads} threads in {elapsed:.1f} s ({calls / elapsed:.0f}/s), "
        f"then flush {flush_s:.2f} s\n"
        f"  on the server: {stored}/{calls}; dropped {s.dropped}, failed {s.failed}, rejected {s.rejected}, "
        f"delivered {delivered}"
    )
    _worker.reset(timeout=0.1)


def bench_redaction(records: int = 300) -> None:
    from sightline.sdk._config import Destination
    from sightline.sdk._encode import encode
    from sightline.sdk._record import Call, Recorder

    recorder = Recorder(sightline.SightlineConfig(api_key="sl_k", server_url="http://x", enabled=False), "")
    text = (
        "Hi, I'm Ann (ann.lee@example.com, +1 415-555-2671). My card 4111 1111 1111 1111 was charged twice; "
        "IBAN DE89 3704 0044 0532 0130 00. Server 10.0.0.12 logs say key sk-abcdefghijklmnopqrstuvwx. "
        "Can you help me with the refund? " * 2
    )
    request = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": text}],
    }
    call = Call(recorder, "chat", uuid.uuid4(), request, None, None, None, False, None, False)
    call.ended = call.started + 0.5
    plain = Destination("http://x", "k")
    redacting = Destination("http://x", "k", redact_pii=True)
    encode(redacting, "generation", call)
    results = []
    for dest in (plain, redacting):
        started = time.perf_counter()
        for _ in range(records):
            encode(dest, "generation", call)
        results.append((time.perf_counter() - started) / records * 1e6)
    print(
        f"Redaction on the exporter thread, record with {len(text)} characters of chat: "
        f"encode {results[0]:.0f} µs, encode+redact {results[1]:.0f} µs "
        f"(redaction {results[1] - results[0]:.0f} µs per record; the caller's thread pays none of it)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--streams", type=int, default=600)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--thread-calls", type=int, default=10_000)
    parser.add_argument("--upstream-url", help="an OpenAI-compatible base URL (default: a local fake)")
    args = parser.parse_args()

    fake = None if args.upstream_url else FakeOpenAI()
    upstream = args.upstream_url or fake.base_url  # type: ignore[union-attr]
    with tempfile.TemporaryDirectory() as tmp:
        from tests.conftest import stop_server

        process, url, key = _server(Path(tmp))
        try:
            print(f"python {sys.version.split()[0]}, openai {openai.__version__}, upstream {upstream}\n")
            bench_sequential(upstream, url, key, args.calls, f"{args.calls} sequential chat calls, server up")
            bench_sequential(
                upstream,
                "http://127.0.0.1:9",
                key,
                args.calls,
                f"{args.calls} sequential chat calls, server down",
            )
            bench_stream(upstream, url, key, args.streams)
            bench_threads(upstream, url, key, args.thread_calls, args.threads)
            bench_redaction()
        finally:
            stop_server(process)
            if fake is not None:
                fake.close()


if __name__ == "__main__":
    main()
