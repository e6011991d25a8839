"""Each fast path of docs/fast-paths.md against the library path it replaces, measured in the same run.

    .venv/bin/python bench/bench_fast_paths.py [--rounds 7] [--only body,store,...]

For each fast path the same work is done both ways, alternating, ``--rounds`` times; the best time
per unit of work is printed for each, with the ratio (library / fast). What is measured:

* ``body``: a generation's stored JSON: ``records.generation_json`` (orjson on typed dicts) vs
  pydantic's ``model_dump_json``;
* ``insert``: 100 generations rows: ``dialect.insert_ignore`` (positional rows, the driver's cursor,
  one multi-row statement) vs SQLAlchemy's ``insert().on_conflict_do_nothing()`` of dicts (its
  "insertmanyvalues" batching), on SQLite and on PostgreSQL
  when it runs on 127.0.0.1:5432; each round's insert is rolled back;
* ``select_in``: 100 ids looked up: ``dialect.select_in`` vs SQLAlchemy's ``IN``;
* ``upsert``: 100 rollup rows added: ``dialect.upsert_add`` vs SQLAlchemy's ``on_conflict_do_update``;
* ``price``: one call priced: ``pricing.price`` (rates kept as floats) vs ``genai_prices.calc_price``;
* ``response``: a page of 50 records as a JSON response: ``responses.JSON`` (orjson) vs Starlette's
  ``JSONResponse``;
* ``batch``: a 100-generation ingest batch validated: in one pass from the JSON text vs item by item;
* ``route``: a POST of one generation through the ASGI app (validation and the answer, no database):
  a plain Starlette route vs a FastAPI endpoint taking the model and a dependency;
* ``http``: sequential requests to a local upstream (a process of its own): the gateway's
  ``HTTPClient`` vs ``httpx.AsyncClient``;
* ``gc``: preparing 20,000 generations (``prepare_generation``) in a process with the server's
  modules loaded: ``gc_tuning.for_long_running_process()`` vs CPython's default collector settings.

The writer process (``SIGHTLINE_WRITER=process`` against ``thread``) pays off only beside a busy event
loop: measure it with ``bench/bench_server.py`` run once with each setting.

Figures are printed, never asserted: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sightline.schema import Generation  # noqa: E402
from sightline.server.responses import JSON  # noqa: E402
from sightline.store import Scope, migrate  # noqa: E402
from sightline.store import tables as t  # noqa: E402
from sightline.store.engine.connection import create  # noqa: E402
from sightline.store.engine.dialect import insert_ignore, select_in, upsert_add  # noqa: E402
from sightline.store.generations.records import generation_json, generation_rows  # noqa: E402

PG_URL = os.environ.get("SIGHTLINE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def generation(i: int) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "timestamp": "2026-11-01T10:00:00Z",
        "model": {"id": "gpt-4o", "provider": "openai"},
        "input": {"content": [{"role": "user", "content": f"question number {i} " * 5}]},
        "output": {"content": f"answer number {i} " * 8},
        "parameters": {"temperature": 0.7, "maxTokens": 512},
        "usage": {"promptTokens": 200 + i, "completionTokens": 50},
        "metadata": {"userId": f"user-{i % 50}", "plan": "pro", "region": "eu"},
        "performance": {"latency": 812.5, "timeToFirstToken": 120.0},
        "template": {"name": "answer", "chat": [{"role": "user", "content": "{q}"}], "params": {"q": i}},
        "status": "ok",
    }


def compare(
    name: str, unit: str, per: int, fast: Callable[[], Any], library: Callable[[], Any], rounds: int
) -> None:
    """Alternate ``fast`` and ``library`` for ``rounds`` rounds; print the best µs per ``unit`` of each
    (the least disturbed round, as ``timeit`` reports: on a shared machine noise only ever adds)."""
    fast(), library()  # warm: imports, caches, statements
    times: dict[str, list[float]] = {"fast": [], "library": []}
    for _ in range(rounds):
        for label, work in (("fast", fast), ("library", library)):
            started = time.perf_counter()
            work()
            times[label].append((time.perf_counter() - started) / per * 1e6)
    f, lib = min(times["fast"]), min(times["library"])
    print(f"{name:<22} {f:>10.1f} µs {lib:>10.1f} µs   x{lib / f:5.1f}   per {unit}")


def bench_body(rounds: int) -> None:
    gens = [Generation.model_validate(generation(i)) for i in range(1000)]
    compare(
        "body",
        "generation",
        len(gens),
        lambda: [generation_json(g) for g in gens],
        lambda: [g.model_dump_json(by_alias=True, exclude_none=True, exclude={"feedback"}) for g in gens],
        rounds,
    )


def _databases() -> list[tuple[str, str]]:
    found = [("sqlite", f"sqlite:///{tempfile.mkdtemp()}/bench.db")]
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            pass
    except OSError:
        return found
    from sqlalchemy import create_engine, text

    name = f"sightline_fast_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return [*found, ("postgresql", PG_URL.rsplit("/", 1)[0] + "/" + name)]


def _drop(url: str) -> None:
    from sqlalchemy import create_engine, text

    if url.startswith("sqlite"):
        return
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    admin.dispose()


def bench_store(rounds: int) -> None:
    scope = Scope(1, "dev")
    rows = [generation_rows(Generation.model_validate(generation(i)), scope)[0] for i in range(100)]
    at_body = t.GENERATION_AT["body"]
    # SQLAlchemy's insert takes dicts, with the JSON column as a value its serializer writes
    dicts = [
        dict(zip(t.GENERATION_COLUMNS, row, strict=True)) | {"body": orjson.loads(row[at_body])}
        for row in rows
    ]
    hour = 3_600_000_000
    rollups = [
        (1, "dev", h * hour, f"model-{m}", 1, 10, 5, 0.01, 0, 0, 0.0, 0) for h in range(20) for m in range(5)
    ]
    for dialect, url in _databases():
        _store_on(dialect, url, rounds, rows, dicts, rollups)


def _store_on(
    dialect: str,
    url: str,
    rounds: int,
    rows: list[list[Any]],
    dicts: list[dict[str, Any]],
    rollups: list[Any],
) -> None:
    """The store's fast paths against SQLAlchemy on one database."""
    from sqlalchemy import select
    from sqlalchemy.dialects import postgresql, sqlite

    rollup_columns = tuple(t.rollup_hourly.c.keys())
    added = ("requests", "prompt_tokens", "completion_tokens", "cost")
    engine = create(url)
    try:
        migrate(engine)
        with engine.begin() as conn:
            insert_ignore(conn, t.generations, rows, columns=t.GENERATION_COLUMNS)
        ids = [row[0] for row in rows]

        def rolled_back(work: Callable[[Any], Any]) -> Callable[[], None]:
            def run() -> None:
                with engine.connect() as conn:
                    transaction = conn.begin()
                    work(conn)
                    transaction.rollback()

            return run

        construct = postgresql.insert if dialect == "postgresql" else sqlite.insert
        fresh = [[str(uuid.uuid4()), *row[1:]] for row in rows]
        fresh_dicts = [d | {"id": row[0]} for d, row in zip(dicts, fresh, strict=True)]
        compare(
            f"insert ({dialect})",
            "row",
            len(rows),
            rolled_back(lambda c: insert_ignore(c, t.generations, fresh, columns=t.GENERATION_COLUMNS)),
            rolled_back(lambda c: c.execute(construct(t.generations).on_conflict_do_nothing(), fresh_dicts)),
            rounds,
        )
        g = t.generations
        compare(
            f"select_in ({dialect})",
            "lookup of 100 ids",
            1,
            rolled_back(lambda c: select_in(c, "SELECT id FROM generations WHERE id IN ({in})", ids)),
            rolled_back(lambda c: c.execute(select(g.c.id).where(g.c.id.in_(ids))).all()),
            rounds,
        )
        construct = postgresql.insert if dialect == "postgresql" else sqlite.insert
        hourly = t.rollup_hourly

        def library_upsert(conn: Any) -> None:
            stmt = construct(hourly).values([dict(zip(rollup_columns, r, strict=True)) for r in rollups])
            stmt = stmt.on_conflict_do_update(
                index_elements=list(hourly.primary_key.columns),
                set_={c: hourly.c[c] + stmt.excluded[c] for c in added},
            )
            conn.execute(stmt)
            conn.execute(stmt)

        def fast_upsert(conn: Any) -> None:
            upsert_add(conn, hourly, rollups, add=added, columns=rollup_columns)
            upsert_add(conn, hourly, rollups, add=added, columns=rollup_columns)

        compare(
            f"upsert ({dialect})",
            "row",
            2 * len(rollups),
            rolled_back(fast_upsert),
            rolled_back(library_upsert),
            rounds,
        )
    finally:
        engine.dispose()
        _drop(url)


def bench_price(rounds: int) -> None:
    from genai_prices import Usage, calc_price

    from sightline.store.generations.pricing import price

    calls = [(200 + i, 50 + i % 7) for i in range(500)]
    compare(
        "price",
        "call",
        len(calls),
        lambda: [price("gpt-4o", "openai", p, c) for p, c in calls],
        lambda: [
            float(
                calc_price(
                    Usage(input_tokens=p, output_tokens=c), model_ref="gpt-4o", provider_id="openai"
                ).total_price
            )
            for p, c in calls
        ],
        rounds,
    )


def bench_response(rounds: int) -> None:
    from starlette.responses import JSONResponse

    page = {
        "data": [orjson.loads(generation_json(Generation.model_validate(generation(i)))) for i in range(50)]
    }
    compare(
        "response", "page of 50", 1, lambda: JSON(page).body, lambda: JSONResponse(page).body, rounds * 20
    )


def bench_batch(rounds: int) -> None:
    from sightline.schema import IngestBatch

    raw = orjson.dumps({"batch": [{"type": "generation", "body": generation(i)} for i in range(100)]})
    compare(
        "batch",
        "generation",
        100,
        lambda: IngestBatch.model_validate_json(raw),
        lambda: [Generation.model_validate(item["body"]) for item in orjson.loads(raw)["batch"]],
        rounds,
    )


def bench_route(rounds: int) -> None:
    async def key(request: Request) -> str:
        return request.headers.get("authorization", "")

    async def plain(request: Request) -> JSON:
        await key(request)
        gen = Generation.model_validate_json(await request.body())
        return JSON({"id": gen.id, "created": True}, status_code=201)

    fastapi_app = FastAPI()

    @fastapi_app.post("/api/generations", status_code=201)
    async def endpoint(gen: Generation, caller: str = Depends(key)) -> JSON:  # noqa: B008
        return JSON({"id": gen.id, "created": True}, status_code=201)

    starlette_app = Starlette(routes=[Route("/api/generations", plain, methods=["POST"])])
    body = orjson.dumps(generation(1))
    headers = [(b"content-type", b"application/json"), (b"authorization", b"Bearer k")]

    async def post(app: Any, n: int) -> None:
        for _ in range(n):
            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "POST",
                "scheme": "http",
                "path": "/api/generations",
                "raw_path": b"/api/generations",
                "query_string": b"",
                "root_path": "",
                "headers": headers,
                "server": ("x", 80),
                "client": ("y", 1),
            }
            sent = False

            async def receive() -> dict[str, Any]:
                nonlocal sent
                if sent:
                    return {"type": "http.disconnect"}
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.body":
                    assert b'"created":true' in message["body"], message

            await app(scope, receive, send)

    n = 500
    compare(
        "route",
        "request",
        n,
        lambda: asyncio.run(post(starlette_app, n)),
        lambda: asyncio.run(post(fastapi_app, n)),
        rounds,
    )


def bench_http(rounds: int) -> None:
    import httpx

    from sightline.gateway.forwarding.httpclient import HTTPClient

    port = _free_port()
    upstream = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve().parent.parent / "tests" / "gateway" / "upstream.py"),
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait(port)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        body = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
        headers = {"content-type": "application/json", "authorization": "Bearer sk"}
        n = 500

        async def ours() -> None:
            client = HTTPClient(read_timeout=10)
            for _ in range(n):
                response = await client.request("POST", url, headers, body)
                await response.read()
            await client.aclose()

        async def theirs() -> None:
            async with httpx.AsyncClient(headers={"accept-encoding": "identity"}) as client:
                for _ in range(n):
                    (await client.post(url, headers=headers, content=body)).read()

        compare("http", "request", n, lambda: asyncio.run(ours()), lambda: asyncio.run(theirs()), rounds)
    finally:
        upstream.terminate()
        upstream.wait(10)


_GC_RUN = """
import time, sys, orjson
sys.path.insert(0, {root!r})
import sightline.server.app  # what a server process has loaded
from sightline import gc_tuning
from sightline.schema import Generation
from sightline.store import Scope
from sightline.store.generations.ingest import prepare_generation
from bench.bench_fast_paths import generation
if {tuned}:
    gc_tuning.for_long_running_process()
import collections
raws = [orjson.dumps(generation(i)) for i in range(20000)]
in_flight = collections.deque(maxlen=32)  # batches waiting for their commit, as on a busy server
batch = []
started = time.process_time()
for raw in raws:
    batch.append(prepare_generation(Generation.model_validate_json(raw), Scope(1, "dev")))
    if len(batch) == 100:
        in_flight.append(batch)
        batch = []
print((time.process_time() - started) / len(raws) * 1e6)
"""


def bench_gc(rounds: int) -> None:
    root = str(Path(__file__).resolve().parent.parent)

    def run(tuned: bool) -> float:
        code = _GC_RUN.format(root=root, tuned=tuned)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        return float(out.stdout.strip())

    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(max(3, rounds // 2)):
        for tuned in (True, False):
            times[tuned].append(run(tuned))
    f, lib = min(times[True]), min(times[False])
    print(f"{'gc':<22} {f:>10.1f} µs {lib:>10.1f} µs   x{lib / f:5.1f}   per generation prepared (CPU)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


BENCHES: dict[str, Callable[[int], None]] = {
    "body": bench_body,
    "store": bench_store,
    "price": bench_price,
    "response": bench_response,
    "batch": bench_batch,
    "route": bench_route,
    "http": bench_http,
    "gc": bench_gc,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--only", default=",".join(BENCHES), help=f"some of: {','.join(BENCHES)}")
    args = parser.parse_args()
    print(f"{'fast path':<22} {'fast':>13} {'library':>13}   ratio")
    for name in args.only.split(","):
        BENCHES[name](args.rounds)


if __name__ == "__main__":
    main()
