"""Memory of one big ingest (issue 15, item 3): peak resident memory of server + writer, against the body.

    .venv/bin/python bench/bench_ingest_memory.py                    # SQLite, writer in its own process
    .venv/bin/python bench/bench_ingest_memory.py --dialect postgresql
    PYTHONPATH=/tmp/old/src .venv/bin/python bench/bench_ingest_memory.py   # the same on other code

It starts a real ``sightline serve`` (with its writer process), warms it with a small batch, then
sends one valid ~11.5 MB ``/api/ingest`` batch (10,000 generations x 100 metadata keys) and then
three such batches at once, sampling the private resident memory (RssAnon) of the server and its
children (found with ``pgrep -P``, as bench_server.py does) every few milliseconds. It prints, for
each burst, the memory before, the peak, and what is held a few seconds after, and the ratio of the
peak's growth to the bytes sent: the baseline is the memory measured in the same run, before the burst.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
from sqlalchemy import create_engine, text

MIB = 1024 * 1024
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def own_kib(pid: int) -> int:
    """Private resident memory (RssAnon) of one process, in KiB. (SQLite's page cache is in it: up to
    64 MiB per connection, as ``cache_size`` says; file pages mapped by ``mmap_size`` are not.)"""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except FileNotFoundError:  # it ended meanwhile
        return 0
    for line in lines:
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(child) for child in found]


def rss_kib(pid: int) -> int:
    """Private resident memory (RssAnon) of a process and all its descendants, in KiB."""
    return own_kib(pid) + sum(rss_kib(child) for child in children(pid))


def batch_body(generations: int, keys: int, seed: int) -> bytes:
    """A valid batch of ``generations`` generations, each with ``keys`` custom metadata keys."""
    items = []
    for i in range(generations):
        body = {
            "id": str(uuid.UUID(int=seed * 10**9 + i, version=4)),
            "model": {"id": "gpt-4o"},
            "metadata": {f"k{j}": "v" for j in range(keys)},
        }
        items.append({"type": "generation", "body": body})
    return orjson.dumps({"batch": items})


class Sampler:
    """Samples the memory of a process tree on a thread, keeping the peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self.server_peak = 0  # of the server process alone (the rest is the writer process)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            self.server_peak = max(self.server_peak, own_kib(self.pid))
            time.sleep(0.005)

    def __enter__(self) -> Sampler:
        self.peak = rss_kib(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_kib(self.pid))


def settle(pid: int, seconds: float = 3.0) -> int:
    """The memory once the burst is over (the lowest of a few samples over ``seconds``)."""
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append(rss_kib(pid))
        time.sleep(0.25)
    return min(samples)


def post(url: str, key: str, body: bytes) -> tuple[int, int]:
    """Send one batch; answers (HTTP status, generations stored)."""
    r = httpx.post(
        f"{url}/api/ingest",
        content=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=600,
    )
    if r.status_code != 200:
        return r.status_code, 0
    return r.status_code, sum(1 for x in r.json()["results"] if x.get("status") == 201)


def burst(pid: int, name: str, sends: list[Callable[[], tuple[int, int]]], sent_bytes: int) -> None:
    before = settle(pid, 1.0)
    before_server = own_kib(pid)
    answers: list[tuple[int, int]] = []
    with Sampler(pid) as sampler:
        threads = [threading.Thread(target=lambda s=s: answers.append(s())) for s in sends]  # type: ignore[misc]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    after = settle(pid)
    growth = (sampler.peak - before) * 1024
    print(f"  {name}")
    print(f"    answers: {sorted(answers)}  (status, generations stored)")
    print(
        f"    server + writer: before {before / 1024:,.0f} MiB, peak {sampler.peak / 1024:,.0f} MiB, "
        f"after {after / 1024:,.0f} MiB  (server alone: before {before_server / 1024:,.0f}, "
        f"peak {sampler.server_peak / 1024:,.0f}, after {own_kib(pid) / 1024:,.0f} MiB)"
    )
    print(
        f"    peak growth {growth / MIB:,.0f} MiB for {sent_bytes / MIB:,.1f} MiB sent: "
        f"ratio {growth / sent_bytes:.1f}x   (target <= 10x); held after: "
        f"{(after - before) * 1024 / sent_bytes:.1f}x"
    )


def start(database_url: str, workdir: Path, writer: str) -> tuple[subprocess.Popen[bytes], str, str]:
    exe = str(Path(sys.executable).parent / "sightline")
    env = {**os.environ, "SIGHTLINE_DATABASE_URL": database_url, "SIGHTLINE_WRITER": writer}
    made = subprocess.run(
        [exe, "token", "create", "--project", "bench", "--environment", "dev"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = made.stdout.strip().splitlines()[-1]
    port = 20000 + os.getpid() % 20000
    log = workdir / "server.log"
    process = subprocess.Popen(
        [exe, "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url, key
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(log.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dialect", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--writer", choices=["process", "thread"], default="process")
    parser.add_argument("--generations", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=100, help="custom metadata keys per generation")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        drop: Callable[[], None] = lambda: None  # noqa: E731
        if args.dialect == "sqlite":
            database_url = f"sqlite:///{workdir / 'bench.db'}"
        else:
            name = f"sightline_mem_{os.getpid()}"
            admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            database_url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name

            def drop() -> None:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

        process, url, key = start(database_url, workdir, args.writer)
        try:
            pid = process.pid
            bodies = [batch_body(args.generations, args.keys, seed) for seed in range(1, 5)]
            size = len(bodies[0])
            print(
                f"== {args.dialect}, writer: {args.writer}; batch of {args.generations:,} generations x "
                f"{args.keys} metadata keys = {size / 1e6:.1f} MB ({size / MIB:.1f} MiB) =="
            )
            post(url, key, batch_body(10, args.keys, 99))  # warm: imports, connections, caches
            print(f"  idle, warmed: {settle(pid) / 1024:,.0f} MiB")
            burst(pid, "one batch", [lambda: post(url, key, bodies[0])], size)
            burst(
                pid,
                "three batches at once",
                [lambda b=b: post(url, key, b) for b in bodies[1:]],  # type: ignore[misc]
                3 * size,
            )
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
            drop()


if __name__ == "__main__":
    main()
