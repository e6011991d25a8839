"""Benchmark of what a recorded call costs the application: sightline.Client against plain openai.OpenAI.

Runs in one process against a local OpenAI-compatible server (``tests/fake_openai.py`` in a child
process, or ``--upstream-url``) and a real ``sightline serve`` on a temporary SQLite file, and prints
every figure next to its baseline measured in the same run:

1. Blocks of sequential chat calls (``--block`` plain calls, then ``--block`` recorded calls, each
   recorded block flushed to the server inside the block), alternating over ``--rounds`` rounds in
   the same process. Per call: process CPU (every thread: the caller's and the exporter's, as the
   user's process pays it) and wall time, plain vs recorded, the added CPU in µs and the ratio.
   Then the same with no sockets (upstream and server answer in memory: the SDK's own CPU, with
   less noise), and with the Sightline server down.
2. Streams: added time to the first chunk.
3. 10,000 calls from 16 threads: how many reached the server (none may be dropped).
4. What redaction (``redact_pii=True``) costs per record on the exporter thread.
5. What JSON and gzip (levels 1 and 5) cost per record of a batch, and how much gzip saves.

Why blocks: calls alternated one by one let the exporter thread's work (building, encoding,
compressing and posting records, all holding the GIL) land on the plain calls as much as on the
recorded ones, which hid most of the cost. A block ends only when its records were delivered, so
all of a block's work is counted in that block.

    .venv/bin/python bench/bench_sdk.py [--rounds 8] [--block 200] [--threads 16] [--thread-calls 10000]

Figures are printed, never asserted: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import openai  # noqa: E402
from openai.types.chat import ChatCompletionMessageParam  # noqa: E402
from tests.fake_openai import FakeOpenAI  # noqa: E402

import sightline  # noqa: E402
from sightline.sdk import _worker  # noqa: E402

MESSAGES: list[ChatCompletionMessageParam] = [
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


def _exporter_cpu() -> float:
    """CPU seconds spent so far by the exporter threads alive now (Linux: each thread's CPU clock)."""
    total = 0.0
    for thread in threading.enumerate():
        if thread.name.startswith("sightline-exporter") and thread.ident is not None:
            total += time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    return total


Figures = tuple[float, float, float, float]  # per call: process CPU, caller's thread, exporter, wall


def _block(call: Callable[[], Any], calls: int, flush: float) -> Figures:
    """Seconds per call of one block: process CPU, the caller's thread CPU, exporter CPU, wall.

    A recorded block ends once its records are delivered (waiting up to ``flush`` seconds), so the
    exporter's work for them is counted in it.
    """
    cpu, mine, exporter, wall = time.process_time(), time.thread_time(), _exporter_cpu(), time.perf_counter()
    for _ in range(calls):
        call()
    if flush and not sightline.flush(flush) and flush >= 30:
        print(f"  (a block was not delivered within {flush:.0f} s)")
    return (
        (time.process_time() - cpu) / calls,
        (time.thread_time() - mine) / calls,
        (_exporter_cpu() - exporter) / calls,
        (time.perf_counter() - wall) / calls,
    )


Blocks = tuple[list[float], list[float], list[float], list[float]]  # the Figures of each round


def _blocks(
    plain: Callable[[], Any], traced: Callable[[], Any], rounds: int, block: int, flush: float
) -> tuple[Blocks, Blocks]:
    """The figures of each round's plain and recorded block (the order swaps every round)."""
    _block(plain, block, 0)  # warm up: connections, imports, caches, the exporter thread
    _block(traced, block, flush)
    out: tuple[Blocks, Blocks] = (([], [], [], []), ([], [], [], []))
    for n in range(rounds):
        for which in (0, 1) if n % 2 == 0 else (1, 0):
            figures = _block(traced if which else plain, block, flush if which else 0)
            for sink, value in zip(out[which], figures, strict=True):
                sink.append(value)
    return out


def _report_blocks(title: str, plain: Blocks, traced: Blocks) -> None:
    cp, mp, _, wp = map(_median_us, plain)
    ct, mt, et, wt = map(_median_us, traced)
    # Each round's recorded block against the plain block beside it: a pair shares the machine's mood.
    added = sorted((t - p) * 1e6 for p, t in zip(plain[0], traced[0], strict=True))
    caller = sorted((t - p) * 1e6 for p, t in zip(plain[1], traced[1], strict=True))
    print(
        f"{title}\n"
        f"  process CPU per call: plain {cp:8.1f} µs   recorded {ct:8.1f} µs   "
        f"added {ct - cp:+7.1f} µs, ratio x{ct / cp:.3f} (goal ≤ +60 µs and ≤ x1.05)\n"
        f"    added per round, sorted (median {statistics.median(added):+.1f} µs): "
        + " ".join(f"{a:+.0f}" for a in added)
        + f"\n    the caller's thread: added {statistics.median(caller):+.1f} µs (median of the rounds)\n"
        f"    the exporter thread: {et:.1f} µs per record (its own CPU clock; "
        f"rounds: {' '.join(f'{e * 1e6:.0f}' for e in sorted(traced[2]))})\n"
        f"  wall time per call:   plain {wp:8.1f} µs   recorded {wt:8.1f} µs   "
        f"added {wt - wp:+7.1f} µs, ratio x{wt / wp:.3f}"
    )


def _clients(upstream: str, server_url: str, key: str) -> tuple[openai.OpenAI, sightline.Client]:
    plain = openai.OpenAI(api_key="k", base_url=upstream)
    traced = sightline.Client(
        api_key="k",
        base_url=upstream,
        sightline=sightline.SightlineConfig(api_key=key, server_url=server_url),
    )
    return plain, traced


def bench_blocks(
    upstream: str, server_url: str, key: str, rounds: int, block: int, title: str, flush: float = 30
) -> None:
    _worker.reset()
    plain, traced = _clients(upstream, server_url, key)
    before = sightline.stats()
    results = _blocks(
        lambda: plain.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES),
        lambda: traced.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES),
        rounds,
        block,
        flush,
    )
    _report_blocks(title, *results)
    s = sightline.stats()
    print(
        f"  records: sent {s.sent - before.sent}, queued {s.queued}, dropped {s.dropped}, "
        f"failed {s.failed}, batches {s.batches}"
    )
    _worker.reset(timeout=0.1)


_ANSWER = (
    b'{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini-2024-07-18",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"\xe2\x9a\xbd"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":20,"completion_tokens":1,"total_tokens":21}}'
)


def _upstream(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=_ANSWER, headers={"content-type": "application/json"})


def _sink(request: httpx.Request) -> httpx.Response:
    # Answers as the server does without parsing (this runs on the exporter thread, and is not its work).
    items = request.content.count(b'{"type":')
    results = ",".join(f'{{"index":{i},"status":201}}' for i in range(items))
    return httpx.Response(200, content=f'{{"results":[{results}]}}'.encode())


def bench_in_memory(rounds: int, block: int) -> None:
    """The same blocks with no sockets: upstream and server answer in memory (httpx.MockTransport).

    Nothing else on the machine (the server's work on a record, the upstream) runs during a block, so
    this shows the SDK's own CPU with far less noise; it is not the user's whole figure.
    """
    _worker.reset(transport=httpx.MockTransport(_sink))
    mock = httpx.MockTransport(_upstream)
    plain = openai.OpenAI(
        api_key="k",
        base_url="http://upstream/v1",
        http_client=httpx.Client(transport=mock),  # type: ignore[arg-type]
    )
    traced = sightline.Client(
        api_key="k",
        base_url="http://upstream/v1",
        http_client=httpx.Client(transport=mock),
        sightline=sightline.SightlineConfig(
            api_key="sl_k", server_url="http://sightline.test", compress=False
        ),
    )
    results = _blocks(
        lambda: plain.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES),
        lambda: traced.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES),
        rounds,
        block,
        30,
    )
    _report_blocks(f"The same, upstream and server in memory ({rounds} rounds)", *results)
    s = sightline.stats()
    print(f"  records: sent {s.sent}, queued {s.queued}, failed {s.failed}, batches {s.batches}")
    _worker.reset(timeout=0.1)


def bench_stream(upstream: str, server_url: str, key: str, calls: int) -> None:
    _worker.reset()
    plain, traced = _clients(upstream, server_url, key)
    first: tuple[list[float], list[float]] = ([], [])

    def one(client: openai.OpenAI, sink: list[float] | None) -> None:
        started = time.perf_counter()
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        for n, _ in enumerate(stream):
            if n == 0 and sink is not None:
                sink.append(time.perf_counter() - started)

    for _ in range(50):
        one(plain, None)
        one(traced, None)
    for i in range(calls):
        one(traced if i % 2 else plain, first[i % 2])
    p, t = _median_us(first[0]), _median_us(first[1])
    print(
        f"Streams, time to first chunk ({calls} streams, alternating)\n"
        f"  plain {p:8.1f} µs   recorded {t:8.1f} µs   added {t - p:+7.1f} µs (goal ≤ 100 µs)"
    )
    sightline.flush(10)
    _worker.reset(timeout=0.1)


def bench_threads(upstream: str, server_url: str, key: str, calls: int, threads: int) -> None:
    _worker.reset()
    _, traced = _clients(upstream, server_url, key)
    chat_id = f"bench-{uuid.uuid4().hex[:8]}"

    def call(_: int) -> None:
        traced.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            sightline={"chat_id": chat_id},
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


def bench_compression(records: int = 1000) -> None:
    import random
    import zlib

    from sightline.sdk._sender import dumps_batch

    words = ["the", "a", "soccer", "emoji", "answer", "sport", "show", "me", "you", "with", "one"]
    words += ["ball", "goal", "match", "team", "player"]
    items = [
        {
            "type": "generation",
            "body": {
                "id": str(uuid.uuid4()),
                "timestamp": f"2026-12-03T08:00:{i % 60:02d}.{i:06d}+00:00",
                "model": {"id": "gpt-4o-mini", "version": "gpt-4o-mini-2024-07-18"},
                "input": {
                    "type": "text",
                    "content": [
                        *MESSAGES[:1],
                        {"role": "user", "content": " ".join(random.choices(words, k=30))},
                    ],
                },
                "output": {"type": "text", "content": " ".join(random.choices(words, k=20))},
                "metadata": {"requestId": f"req_{uuid.uuid4().hex}"},
                "performance": {"latency": random.random() * 1000},
                "status": "ok",
            },
        }
        for i in range(records)
    ]
    started = time.process_time()
    raw = dumps_batch(items)
    dump_us = (time.process_time() - started) / records * 1e6
    line = (
        f"A batch of {records} chat records, {len(raw) / records:.0f} B each: JSON {dump_us:.1f} µs a record"
    )
    for level in (1, 5):
        started = time.process_time()
        for _ in range(10):
            packer = zlib.compressobj(level, zlib.DEFLATED, 31)
            packed = packer.compress(raw) + packer.flush()
        spent = (time.process_time() - started) / 10 / records * 1e6
        line += f"; gzip level {level} {spent:.1f} µs a record, to {len(packed) / len(raw):.0%}"
    print(line + " (the exporter gzips at level 1, and only for a server on another machine)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8, help="rounds of one plain and one recorded block")
    parser.add_argument("--block", type=int, default=200, help="calls per block")
    parser.add_argument("--streams", type=int, default=600)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--thread-calls", type=int, default=10_000)
    parser.add_argument(
        "--only-blocks", action="store_true", help="measure the blocks with the server up only"
    )
    parser.add_argument("--upstream-url", help="an OpenAI-compatible base URL (default: a local fake)")
    args = parser.parse_args()

    fake = None if args.upstream_url else FakeOpenAI()
    upstream = args.upstream_url or fake.base_url  # type: ignore[union-attr]
    with tempfile.TemporaryDirectory() as tmp:
        from tests.conftest import stop_server

        process, url, key = _server(Path(tmp))
        try:
            print(f"python {sys.version.split()[0]}, openai {openai.__version__}, upstream {upstream}\n")
            shape = f"{args.rounds} rounds of {args.block} plain + {args.block} recorded chat calls"
            bench_blocks(upstream, url, key, args.rounds, args.block, f"{shape}, server up")
            bench_in_memory(args.rounds, args.block)
            if args.only_blocks:
                return
            # Nothing can be delivered: a block waits a moment for the exporter's attempt, no more.
            down = f"{shape}, server down (each block's flush waits 0.2 s)"
            bench_blocks(upstream, "http://127.0.0.1:9", key, args.rounds, args.block, down, flush=0.2)
            bench_stream(upstream, url, key, args.streams)
            bench_threads(upstream, url, key, args.thread_calls, args.threads)
            bench_redaction()
            bench_compression()
        finally:
            stop_server(process)
            if fake is not None:
                fake.close()


if __name__ == "__main__":
    main()
