"""Server core figures (issue 2), each printed beside a baseline measured in the same run.

    .venv/bin/python bench/bench_server.py                       # SQLite and PostgreSQL, 1,000,000 rows
    .venv/bin/python bench/bench_server.py --dialect sqlite --rows 200000 --soak 60

For each database it starts a real ``sightline serve`` process and measures:

* ingest: batches of 100 from 8 connections (generations/s) and single posts from 32 connections
  (requests/s) of live traffic: generations made now, with time-ordered (version 7) ids as the SDK
  and gateway make them; also batches of a backfill (random version 4 ids, times spread over 30
  days), for comparison; baseline: ``GET /healthz`` from 32 connections, the HTTP floor of the
  same process;
* with ``--rows`` generations loaded: the list with a user filter and a time range (p95), baseline the
  p95 of ``GET /healthz``; the tokens-by-model aggregate, baseline the same GROUP BY as raw SQL; the
  export of every row (rows/s and the server's peak memory), baseline reading the same rows as raw SQL;
* memory of the server during ``--soak`` seconds of ingest (resident set size sampled every 5 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.loadgen import request_bytes, run  # noqa: E402
from sightline.ids import new_uuid  # noqa: E402
from sightline.schema import Generation  # noqa: E402
from sightline.store import Database, Scope, migrate  # noqa: E402
from sightline.store.access.projects import create_key  # noqa: E402
from sightline.store.generations.ingest import InsertGenerations, prepare_generation  # noqa: E402

MODELS = ["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet-latest", "gemini-1.5-pro", "our-finetune"]
TEMPLATES = ["summarize", "translate", "emoji", "classify", "answer", None]
START = datetime(2026, 10, 1, tzinfo=UTC)


def make_generation(
    i: int, rng: random.Random, spread_days: int = 30, live: bool = False
) -> dict[str, object]:
    """A varied generation. ``live``: made now, with a time-ordered id, as the SDK and gateway send
    them; otherwise a random (version 4) id and a time anywhere in ``spread_days`` (a backfill)."""
    prompt, completion = rng.randint(20, 2000), rng.randint(1, 500)
    template = TEMPLATES[i % len(TEMPLATES)]
    if live:
        gen_id, timestamp = str(new_uuid()), datetime.now(UTC)
    else:
        gen_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        timestamp = START + timedelta(seconds=rng.uniform(0, spread_days * 86400))
    body: dict[str, object] = {
        "id": gen_id,
        "timestamp": timestamp.isoformat(),
        "model": {"id": MODELS[i % len(MODELS)], "provider": "openai"},
        "input": {"type": "text", "content": [{"role": "user", "content": f"question number {i} " * 5}]},
        "output": {"type": "text", "content": f"answer number {i} " * 8},
        "parameters": {"temperature": 0.7, "maxTokens": 512},
        "usage": {"promptTokens": prompt, "completionTokens": completion},
        "metadata": {
            "userId": f"user-{rng.randint(0, 9999)}",
            "plan": rng.choice(["free", "pro", "team"]),
            "region": rng.choice(["eu", "us", "ap"]),
        },
        "performance": {"latency": rng.uniform(100, 4000), "timeToFirstToken": rng.uniform(50, 800)},
        "status": "ok" if rng.random() > 0.02 else "error",
    }
    if template:
        body["template"] = {
            "name": template,
            "chat": [{"role": "user", "content": f"{template} {{text}}"}],
            "params": {"text": "..."},
        }
    return body


def rss_kib(pid: int) -> int:
    """Private resident memory (RssAnon) of a process and its children (`serve --workers N`, the writer
    process), in KiB.

    File pages SQLite maps (mmap_size) count in VmRSS but are the page cache, not the server's memory.
    """
    total = 0
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    for child in children:
        total += rss_kib(int(child))
    status = Path(f"/proc/{pid}/status")
    try:
        lines = status.read_text().splitlines()
    except FileNotFoundError:  # it ended meanwhile
        return total
    for line in lines:
        if line.startswith("RssAnon:"):
            return total + int(line.split()[1])
    return total


def server_pid(process: subprocess.Popen[bytes]) -> int:
    return process.pid


def start(database_url: str, log: Path, workers: int = 1) -> tuple[subprocess.Popen[bytes], int]:
    port = random.randint(20000, 40000)
    exe = str(Path(sys.executable).parent / "sightline")
    env = {**os.environ, "SIGHTLINE_DATABASE_URL": database_url}
    process = subprocess.Popen(
        [exe, "serve", "--port", str(port), "--log-level", "warning", "--workers", str(workers)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process, port
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(log.read_text())


def ingest_requests(key: str, count: int, per_request: int, seed: int, live: bool = True) -> list[bytes]:
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    out = []
    for n in range(count):
        gens = [make_generation(n * per_request + j, rng, live=live) for j in range(per_request)]
        if per_request == 1:
            out.append(request_bytes("POST", "/api/generations", "bench", headers, orjson.dumps(gens[0])))
        else:
            body = orjson.dumps({"batch": [{"type": "generation", "body": g} for g in gens]})
            out.append(request_bytes("POST", "/api/ingest", "bench", headers, body))
    return out


def load_rows(database_url: str, project_id: int, rows: int) -> float:
    """Write ``rows`` generations straight through the store (the same rows the API would write)."""
    db = Database(database_url)
    scope = Scope(project_id, "prod")
    rng = random.Random(7)
    started = time.perf_counter()
    batch = 5000
    for start_at in range(0, rows, batch):
        items = [
            prepare_generation(Generation.model_validate(make_generation(i, rng)), scope)
            for i in range(start_at, min(rows, start_at + batch))
        ]
        with db.engine.begin() as conn:
            InsertGenerations(scope, items).apply(conn)
        if start_at and start_at % 100_000 == 0:
            print(
                f"    loaded {start_at:,} rows ({start_at / (time.perf_counter() - started):,.0f}/s)",
                flush=True,
            )
    elapsed = time.perf_counter() - started
    if db.is_sqlite:
        with db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    else:
        with db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    db.engine.dispose()
    return elapsed


def line(name: str, value: str, baseline: str, ratio: float, target: str) -> None:
    print(
        f"  {name:<44} {value:>16}   baseline {baseline:>16}   ratio {ratio:7.2f}   target {target}",
        flush=True,
    )


def bench(dialect: str, rows: int, soak: float, workdir: Path, workers: int) -> None:
    print(f"\n== {dialect}, {workers} server process(es) ==", flush=True)
    if dialect == "sqlite":
        database_url = f"sqlite:///{workdir / 'bench.db'}"
        drop = None
    else:
        name = f"sightline_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(
            "postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        database_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"

        def drop() -> None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    try:
        db = Database(database_url)
        migrate(db.engine)
        with db.transaction() as conn:
            key, api_key = create_key(conn, "bench", "prod")
        db.engine.dispose()
        process, port = start(database_url, workdir / f"server-{dialect}.log", workers)
        try:
            _measure(database_url, key, api_key.project_id, port, process, rows, soak)
        finally:
            process.terminate()
            process.wait(30)
    finally:
        if drop is not None:
            drop()


def _measure(
    database_url: str,
    key: str,
    project_id: int,
    port: int,
    process: subprocess.Popen[bytes],
    rows: int,
    soak: float,
) -> None:
    host = "127.0.0.1"
    health = [request_bytes("GET", "/healthz", "bench", {})]
    base32 = asyncio.run(run(host, port, health, connections=32, seconds=3))
    print(f"  baseline GET /healthz, 32 connections: {base32.rate:,.0f} requests/s", flush=True)

    def ingest(name: str, feed: list[bytes], connections: int, per_request: int, target: str) -> None:
        res = asyncio.run(run(host, port, feed, connections=connections, total=len(feed)))
        assert res.errors == 0, res.statuses
        rate = res.rate * per_request
        line(name, f"{rate:,.0f}", f"{base32.rate:,.0f} req/s", rate / base32.rate, target)

    batches = ingest_requests(key, 400, 100, seed=1)
    asyncio.run(run(host, port, batches[:16], connections=8, total=16))  # warm up
    ingest("ingest batches of 100, 8 clients (gen/s)", batches[16:], 8, 100, ">= 20,000 gen/s")
    backfill = ingest_requests(key, 200, 100, seed=4, live=False)
    ingest("  the same, backfill: random ids, 30 days", backfill, 8, 100, "(no target)")
    singles = ingest_requests(key, 12000, 1, seed=2)
    ingest("single posts, 32 clients (req/s)", singles, 32, 1, ">= 2,000 req/s")

    if rows:
        print(f"  loading {rows:,} generations through the store ...", flush=True)
        elapsed = load_rows(database_url, project_id, rows)
        print(f"    loaded in {elapsed:.0f}s ({rows / elapsed:,.0f} rows/s)", flush=True)

        base1 = asyncio.run(run(host, port, health, connections=1, total=300))
        headers = {"Authorization": f"Bearer {key}"}
        rng = random.Random(3)
        lists = []
        for _ in range(300):
            day = START + timedelta(days=rng.randint(0, 20))
            path = (
                f"/api/generations?userId=user-{rng.randint(0, 9999)}&from={day.date()}T00:00:00Z"
                f"&to={(day + timedelta(days=10)).date()}T00:00:00Z&limit=50"
            )
            lists.append(request_bytes("GET", path, "bench", headers))
        res = asyncio.run(run(host, port, lists, connections=1, total=len(lists)))
        assert res.errors == 0, res.statuses
        p95 = res.percentile(0.95) * 1000
        line(
            "list, user filter + time range (p95 ms)",
            f"{p95:.1f}",
            f"{base1.percentile(0.95) * 1000:.2f} ms",
            p95 / (base1.percentile(0.95) * 1000),
            "< 50 ms",
        )

        pipeline = {
            "pipeline": [
                {
                    "$group": {
                        "_id": "$model.id",
                        "totalTokens": {"$sum": "$usage.totalTokens"},
                        "averageTokens": {"$avg": "$usage.totalTokens"},
                        "count": {"$sum": 1},
                    }
                },
                {"$sort": {"totalTokens": -1}},
            ]
        }
        engine = create_engine(database_url)
        with engine.connect() as conn:
            started = time.perf_counter()
            conn.execute(
                text(
                    "SELECT model_id, SUM(total_tokens), AVG(total_tokens), COUNT(*) FROM generations "
                    "WHERE project_id = :p GROUP BY model_id"
                ),
                {"p": project_id},
            ).all()
            raw = time.perf_counter() - started
        times = []
        with httpx.Client(base_url=f"http://{host}:{port}", headers=headers, timeout=60) as client:
            for _ in range(3):
                started = time.perf_counter()
                r = client.post("/api/generations/aggregate", json=pipeline)
                times.append(time.perf_counter() - started)
                assert r.status_code == 200, r.text
        best = min(times)
        line(
            "tokens-by-model aggregate, all rows (s)",
            f"{best:.3f}",
            f"{raw:.3f} s raw SQL",
            best / raw,
            "< 1 s",
        )

        with engine.connect() as conn:
            started = time.perf_counter()
            n = 0
            for _ in conn.execution_options(stream_results=True, yield_per=2000).execute(
                text("SELECT body FROM generations WHERE project_id = :p"), {"p": project_id}
            ):
                n += 1
            raw_rate = n / (time.perf_counter() - started)
        engine.dispose()
        peak, stop = [rss_kib(process.pid)], threading.Event()

        def sample() -> None:
            while not stop.wait(0.2):
                peak.append(rss_kib(process.pid))

        sampler = threading.Thread(target=sample)
        sampler.start()
        exported = 0
        started = time.perf_counter()
        with (
            httpx.Client(base_url=f"http://{host}:{port}", headers=headers, timeout=600) as client,
            client.stream("POST", "/api/generations/export", json={"format": "jsonl"}) as r,
        ):
            for chunk in r.iter_bytes():
                exported += chunk.count(b"\n")
        rate = exported / (time.perf_counter() - started)
        stop.set()
        sampler.join()
        line(
            "export all rows as JSONL (rows/s)",
            f"{rate:,.0f}",
            f"{raw_rate:,.0f} rows/s raw",
            rate / raw_rate,
            ">= 50,000 rows/s",
        )
        print(
            f"    exported {exported:,} rows; server memory {peak[0] / 1024:.0f} MiB before, "
            f"peak {max(peak) / 1024:.0f} MiB during",
            flush=True,
        )

    if soak:
        samples: list[int] = []
        started = time.perf_counter()
        total, seed, dropped = 0, 100, 0
        while time.perf_counter() - started < soak:
            seed += 1  # fresh ids every round: every batch is really written
            feed = ingest_requests(key, 200, 100, seed=seed)
            res = asyncio.run(run(host, port, feed, connections=8, total=len(feed)))
            total += res.statuses.get(200, 0) * 100
            dropped += res.errors
            samples.append(rss_kib(process.pid))
        print(
            f"  soak {soak:.0f}s: {total:,} generations; server memory (MiB) first {samples[0] / 1024:.0f}, "
            f"last {samples[-1] / 1024:.0f}, max {max(samples) / 1024:.0f}; growth first->last "
            f"{(samples[-1] - samples[0]) / 1024:+.0f} MiB; {dropped} requests failed",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dialect", default="sqlite,postgresql")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--soak", type=float, default=300.0, help="seconds of ingest while memory is sampled")
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes (`sightline serve --workers`)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sightline-bench-") as tmp:
        for dialect in args.dialect.split(","):
            bench(dialect.strip(), args.rows, args.soak, Path(tmp), args.workers)


if __name__ == "__main__":
    main()
