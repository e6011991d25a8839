"""Gateway figures (issue 4), each printed beside the direct baseline measured in the same run.

    .venv/bin/python bench/bench_gateway.py                      # every figure, 10 s each, 5-minute soak
    .venv/bin/python bench/bench_gateway.py --duration 5 --soak 60
    .venv/bin/python bench/bench_gateway.py --figures 1,3 --soak 0          # some figures only

Needs ``wrk`` (the closed-loop load generator) on PATH: ``apt-get install -y wrk``. This script
installs nothing; it stops with that message when wrk is missing. It starts, in a temporary folder:

* two local OpenAI-compatible upstreams (``tests/gateway/upstream.py``, asyncio + httptools: a few µs
  a request), one answering at once and one after 20 ms;
* one ``sightline serve`` process (SQLite in the temporary folder) forwarding to the first, with the
  second stored as a provider that a header picks.

With two cores or more the gateway gets a core of its own (``taskset``); wrk and the upstreams share
the others. Every figure is measured against the same upstream, directly and through the gateway:

1. one connection, upstream answering at once: added latency at p50 and p99;
2. throughput ceiling of the one server process (64 connections, not streamed), and that every
   request was recorded; then the same with ``--workers`` processes;
3. upstream answering after 20 ms, 64 connections: throughput through the gateway / direct;
4. streamed requests, one connection: added time to the first chunk (a Python client reading the
   raw stream, the same client for both);
5. cache hits (``X-Sightline-Cache: use`` on a cached request): p50 at one connection, requests/s;
6. memory of the server process over ``--soak`` seconds at the ceiling, by minute: its heap
   (``RssAnon``; SQLite's page cache is part of it and fills up to its 64 MiB a connection during the
   first minutes) and its RSS (which also counts the mapped database file).

Figures 1 and 3 also print the latency the gateway recorded for its own calls (arrival to last byte
sent, the upstream included), which tells the gateway's time apart from the wait for its core.
On a two-core machine the gateway's event loop shares its core with its database writer (a thread:
``serve`` confined to one core writes from a thread, see ``SIGHTLINE_WRITER``). The writer's commits
(every 5 ms when at most 2 requests are in flight, every 20 ms under load) set the gateway's p99 at
one connection.

The machines are shared and noisy: a figure is a measurement of this run, never an assertion.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from sightline.store import Database, migrate  # noqa: E402
from sightline.store.access.projects import create_key  # noqa: E402
from sightline.store.gateway.providers import add_provider  # noqa: E402

SECRET = "bench-gateway-secret"
BODY = orjson.dumps(
    {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Say hello to the benchmark"}],
        "max_tokens": 8,
    }
)
STREAM_BODY = orjson.dumps({**orjson.loads(BODY), "stream": True})


# -- processes ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


@dataclass
class Cores:
    """Which cores each part runs on (``None``: anywhere)."""

    gateway: str | None
    load: str | None
    upstream: str | None

    @classmethod
    def plan(cls) -> Cores:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if n >= 3:
            return cls("1", "0", ",".join(str(i) for i in range(2, n)))
        if n == 2:
            return cls("1", "0", "0")
        return cls(None, None, None)

    @staticmethod
    def wrap(cores: str | None, command: list[str]) -> list[str]:
        return ["taskset", "-c", cores, *command] if cores and shutil.which("taskset") else command


@contextmanager
def process(
    command: list[str], port: int, env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[int]:
    out = log.open("wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen(command, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_port(port)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def sightline() -> list[str]:
    exe = shutil.which("sightline", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "sightline.cli"]


# -- wrk --------------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


@dataclass
class Load:
    rps: float
    requests: int
    p50: float  # ms
    p99: float
    errors: int


def _ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", value.strip())
    assert m, value
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(
    url: str,
    body: bytes,
    headers: dict[str, str],
    connections: int,
    seconds: float,
    cores: str | None,
    tmp: Path,
) -> Load:
    script = tmp / f"wrk-{abs(hash((url, body, tuple(headers.items()))))}.lua"
    lines = ['wrk.method = "POST"', f"wrk.body = {lua_string(body.decode())}"]
    lines += [f"wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    threads = max(1, min(connections, 2))
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(Cores.wrap(cores, command), capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (sum(int(x) for x in sock.groups()) if sock else 0)
    return Load(rps, requests, p50, p99, errors)


def lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- time to first chunk ------------------------------------------------------------------------------


async def _first_chunks(port: int, path: str, headers: dict[str, str], n: int) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(STREAM_BODY)}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    request = ("\r\n".join(head) + "\r\n\r\n").encode() + STREAM_BODY
    times: list[float] = []
    for _ in range(n):
        started = time.perf_counter()
        writer.write(request)
        await reader.readuntil(b"\r\n\r\n")
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)  # the first chunk of the body
        times.append((time.perf_counter() - started) * 1000)
        await reader.readexactly(size + 2)
        while size:  # the rest of the stream
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
    writer.close()
    return times


def first_chunks(port: int, path: str, headers: dict[str, str], n: int) -> tuple[float, float]:
    times = asyncio.run(_first_chunks(port, path, headers, n))[n // 10 :]  # the first tenth warms up
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99)]


# -- memory -------------------------------------------------------------------------------------------


def memory_mib(pid: int, field: str = "RssAnon") -> float:
    """A memory figure of a process and its children (``serve --workers``), in MiB.

    ``RssAnon`` (the heap) is what a leak grows; ``VmRSS`` adds the pages of the SQLite file the
    process maps (``mmap_size``), which grow with the database, not with the process.
    """
    total = 0.0
    children = Path(f"/proc/{pid}/task/{pid}/children")
    for child in children.read_text().split() if children.exists() else []:
        total += memory_mib(int(child), field)
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            total += int(line.split()[1]) / 1024
    return total


# -- the run --------------------------------------------------------------------------------------------


def recorded(database_url: str, project_id: int, cache_hits: bool | None = None) -> int:
    engine = create_engine(database_url)
    query = "SELECT count(*) FROM generations WHERE project_id = :p"
    if cache_hits is not None:
        query += " AND cache_hit = :h"
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(query), {"p": project_id, "h": cache_hits}).scalar() or 0)
    finally:
        engine.dispose()


def recorded_latency(database_url: str, project_id: int) -> tuple[float, float]:
    """p50 and p99 of the latency the gateway recorded (arrival to last byte sent, in ms)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT latency_ms FROM generations WHERE project_id = :p"), {"p": project_id}
            ).scalars()
            values = sorted(float(v) for v in rows)
    finally:
        engine.dispose()
    if not values:
        return float("nan"), float("nan")
    return values[len(values) // 2], values[int(len(values) * 0.99)]


def settle(database_url: str, project_id: int, at_least: int, timeout: float = 60.0) -> int:
    """How many generations the project has once the writer has caught up (or ``timeout`` passed)."""
    deadline = time.monotonic() + timeout
    count = recorded(database_url, project_id)
    while count < at_least and time.monotonic() < deadline:
        time.sleep(0.5)
        count = recorded(database_url, project_id)
    return count


class Report:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str, str]] = []

    def add(self, figure: str, direct: str, gateway: str, ratio: str, target: str) -> None:
        self.rows.append((figure, direct, gateway, ratio, target))
        print(
            f"  {figure:<46} direct {direct:>14}   gateway {gateway:>14}   {ratio:>18}   target {target}",
            flush=True,
        )

    def table(self) -> str:
        head = ("figure", "direct", "through gateway", "ratio / added", "target")
        widths = [max(len(r[i]) for r in [head, *self.rows]) for i in range(5)]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in [head, *self.rows]
        ]
        return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load figure")
    parser.add_argument("--soak", type=float, default=300.0, help="seconds of the memory run (0: skip)")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)), help="processes for 2b")
    parser.add_argument("--streams", type=int, default=500, help="streamed requests for figure 4")
    parser.add_argument("--figures", default="1,2,3,4,5,6", help="which figures to measure, e.g. 1,3")
    args = parser.parse_args()
    wanted = set(args.figures.split(","))
    if shutil.which("wrk") is None:
        sys.exit("bench_gateway needs wrk on PATH: apt-get install -y wrk (this script installs nothing)")
    cores = Cores.plan()
    tmp = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    database_url = f"sqlite:///{tmp / 'gateway.db'}"
    db = Database(database_url)
    migrate(db.engine)
    keys: dict[str, tuple[str, int]] = {}
    with db.transaction() as conn:
        for figure in ("warm", "latency", "ceiling", "workers", "slow", "stream", "cache", "soak"):
            secret, key = create_key(conn, f"bench-{figure}", "bench")
            keys[figure] = (secret, key.project_id)
    fast_port, slow_port, gateway_port = free_port(), free_port(), free_port()
    with db.transaction() as conn:
        add_provider(conn, keys["slow"][1], "slow", f"http://127.0.0.1:{slow_port}/v1", "sk-slow", SECRET)
    db.engine.dispose()
    upstream = [sys.executable, str(ROOT / "tests" / "gateway" / "upstream.py")]
    env = {
        "SIGHTLINE_DATABASE_URL": database_url,
        "SIGHTLINE_UPSTREAM_URL": f"http://127.0.0.1:{fast_port}/v1",
        "SIGHTLINE_UPSTREAM_API_KEY": "sk-bench",
        "SIGHTLINE_SECRET_KEY": SECRET,
        "SIGHTLINE_LOG_LEVEL": "warning",
    }
    fast_url = f"http://127.0.0.1:{fast_port}/v1/chat/completions"
    slow_url = f"http://127.0.0.1:{slow_port}/v1/chat/completions"
    gw_url = f"http://127.0.0.1:{gateway_port}/v1/chat/completions"
    json = {"Content-Type": "application/json"}

    def auth(figure: str, **extra: str) -> dict[str, str]:
        return {**json, "Authorization": f"Bearer {keys[figure][0]}", **extra}

    print(
        f"bench_gateway: {os.cpu_count()} cores; gateway on core {cores.gateway}, wrk on {cores.load}, "
        f"upstreams on {cores.upstream}; {args.duration:g} s per figure; folder {tmp}",
        flush=True,
    )
    report = Report()
    d = args.duration
    with (
        process(Cores.wrap(cores.upstream, [*upstream, "--port", str(fast_port)]), fast_port),
        process(
            Cores.wrap(cores.upstream, [*upstream, "--port", str(slow_port), "--delay-ms", "20"]), slow_port
        ),
    ):
        serve = [*sightline(), "serve", "--port", str(gateway_port)]
        with process(Cores.wrap(cores.gateway, serve), gateway_port, env, tmp / "serve.log") as pid:
            # Warm both paths (imports, pools, prices) before measuring anything.
            wrk(fast_url, BODY, json, 8, 2, cores.load, tmp)
            wrk(gw_url, BODY, auth("warm"), 8, 3, cores.load, tmp)

            if "1" in wanted:
                print("1. one connection, upstream answering at once", flush=True)
                direct = wrk(fast_url, BODY, json, 1, d, cores.load, tmp)
                through = wrk(gw_url, BODY, auth("latency"), 1, d, cores.load, tmp)
                report.add(
                    "1. added latency p50, 1 connection",
                    f"{direct.p50:.3f} ms",
                    f"{through.p50:.3f} ms",
                    f"+{through.p50 - direct.p50:.3f} ms",
                    "<= 0.5 ms added",
                )
                report.add(
                    "1. added latency p99, 1 connection",
                    f"{direct.p99:.3f} ms",
                    f"{through.p99:.3f} ms",
                    f"+{through.p99 - direct.p99:.3f} ms",
                    "<= 2 ms added",
                )
                settle(database_url, keys["latency"][1], through.requests)
                own = recorded_latency(database_url, keys["latency"][1])
                report.add(
                    "1. gateway's own recorded time p50 / p99",
                    "",
                    f"{own[0]:.3f} / {own[1]:.3f} ms",
                    "",
                    "arrival to last byte, upstream included",
                )

            if "2" in wanted:
                print("2. throughput ceiling, one server process, 64 connections", flush=True)
                direct = wrk(fast_url, BODY, json, 64, d, cores.load, tmp)
                through = wrk(gw_url, BODY, auth("ceiling"), 64, d, cores.load, tmp)
                count = settle(database_url, keys["ceiling"][1], through.requests)
                report.add(
                    "2. requests/s, not streamed",
                    f"{direct.rps:,.0f}/s",
                    f"{through.rps:,.0f}/s",
                    f"{through.rps / direct.rps:.1%} of direct",
                    ">= 3,000/s",
                )
                report.add(
                    "2. recorded / answered",
                    "",
                    f"{count:,} / {through.requests:,}",
                    "all" if count >= through.requests and not through.errors else f"{through.errors} errors",
                    "every one",
                )

            if "3" in wanted:
                print("3. upstream answering after 20 ms, 64 connections", flush=True)
                direct = wrk(slow_url, BODY, json, 64, d, cores.load, tmp)
                through = wrk(
                    gw_url, BODY, auth("slow", **{"X-Sightline-Provider": "slow"}), 64, d, cores.load, tmp
                )
                report.add(
                    "3. requests/s, 20 ms upstream",
                    f"{direct.rps:,.0f}/s",
                    f"{through.rps:,.0f}/s",
                    f"{through.rps / direct.rps:.1%} of direct",
                    ">= 95% of direct",
                )
                settle(database_url, keys["slow"][1], through.requests)
                own = recorded_latency(database_url, keys["slow"][1])
                report.add(
                    "3. gateway's own recorded time p50 / p99",
                    f"{64 / direct.rps * 1000:.3f} ms (mean)",
                    f"{own[0]:.3f} / {own[1]:.3f} ms",
                    "",
                    "arrival to last byte, upstream included",
                )

            if "4" in wanted:
                print("4. streamed requests, one connection: time to first chunk", flush=True)
                direct_ttfc = first_chunks(fast_port, "/v1/chat/completions", json, args.streams)
                gw_ttfc = first_chunks(gateway_port, "/v1/chat/completions", auth("stream"), args.streams)
                report.add(
                    "4. time to first chunk p50, streamed",
                    f"{direct_ttfc[0]:.3f} ms",
                    f"{gw_ttfc[0]:.3f} ms",
                    f"+{gw_ttfc[0] - direct_ttfc[0]:.3f} ms",
                    "<= 1 ms added",
                )
                report.add(
                    "4. time to first chunk p99, streamed",
                    f"{direct_ttfc[1]:.3f} ms",
                    f"{gw_ttfc[1]:.3f} ms",
                    f"+{gw_ttfc[1] - direct_ttfc[1]:.3f} ms",
                    "",
                )

            if "5" in wanted:
                print("5. cache hits", flush=True)
                cached = auth("cache", **{"X-Sightline-Cache": "use"})
                r = httpx.post(gw_url, content=BODY, headers=cached)
                assert r.status_code == 200 and r.headers["x-sightline-cache"] == "MISS", r.text
                assert httpx.post(gw_url, content=BODY, headers=cached).headers["x-sightline-cache"] == "HIT"
                direct = wrk(fast_url, BODY, json, 1, d, cores.load, tmp)
                through = wrk(gw_url, BODY, cached, 1, d, cores.load, tmp)
                report.add(
                    "5. cache hit p50, 1 connection",
                    f"{direct.p50:.3f} ms",
                    f"{through.p50:.3f} ms",
                    f"{through.p50 / direct.p50:.1f}x direct",
                    "<= 0.5 ms",
                )
                direct = wrk(fast_url, BODY, json, 64, d, cores.load, tmp)
                through = wrk(gw_url, BODY, cached, 64, d, cores.load, tmp)
                report.add(
                    "5. cache hits/s, 64 connections",
                    f"{direct.rps:,.0f}/s",
                    f"{through.rps:,.0f}/s",
                    f"{through.rps / direct.rps:.1%} of direct",
                    ">= 5,000/s",
                )

            if args.soak > 0 and "6" in wanted:
                print(f"6. memory over {args.soak:g} s at the ceiling", flush=True)
                samples: list[tuple[float, float, float]] = []
                stop = threading.Event()

                def sample() -> None:
                    started = time.monotonic()
                    while not stop.wait(5):
                        samples.append(
                            (time.monotonic() - started, memory_mib(pid), memory_mib(pid, "VmRSS"))
                        )

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                soak = wrk(gw_url, BODY, auth("soak"), 64, args.soak, cores.load, tmp)
                stop.set()
                sampler.join()
                count = settle(database_url, keys["soak"][1], soak.requests)
                minutes: dict[int, list[tuple[float, float, float]]] = {}
                for sample in samples:
                    minutes.setdefault(int(sample[0] // 60), []).append(sample)
                heap = [max(x[1] for x in minutes[m]) for m in sorted(minutes)]
                rss = [max(x[2] for x in minutes[m]) for m in sorted(minutes)]
                if heap:
                    report.add(
                        "6. heap (RssAnon) by minute",
                        "",
                        " ".join(f"{h:.0f}" for h in heap) + " MiB",
                        f"{heap[-1] - heap[0]:+.0f} MiB",
                        "flat (SQLite's page cache grows to 64 MiB a connection)",
                    )
                    report.add(
                        "6. RSS (with the mapped db file) by minute",
                        "",
                        " ".join(f"{r:.0f}" for r in rss) + " MiB",
                        f"{rss[-1] - rss[0]:+.0f} MiB",
                        f"{soak.rps:,.0f}/s for {args.soak:g} s; recorded {count:,} / {soak.requests:,}",
                    )

        if args.workers > 1 and "2" in wanted:
            print(f"2b. throughput with {args.workers} worker processes (not pinned)", flush=True)
            serve = [*sightline(), "serve", "--port", str(gateway_port), "--workers", str(args.workers)]
            with process(serve, gateway_port, env, tmp / "serve-workers.log"):
                time.sleep(2)
                wrk(gw_url, BODY, auth("warm"), 64, 3, cores.load, tmp)
                direct = wrk(fast_url, BODY, json, 64, d, cores.load, tmp)
                through = wrk(gw_url, BODY, auth("workers"), 64, d, cores.load, tmp)
                count = settle(database_url, keys["workers"][1], through.requests)
                report.add(
                    f"2b. requests/s, {args.workers} workers",
                    f"{direct.rps:,.0f}/s",
                    f"{through.rps:,.0f}/s",
                    f"{through.rps / direct.rps:.1%} of direct",
                    f"recorded {count:,}/{through.requests:,}",
                )
    print()
    print(report.table())
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
