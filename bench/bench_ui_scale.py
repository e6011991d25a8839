"""Issue 20's figures: search, the generations page with its totals, and a run of 500 steps, each
beside the API's plain list measured in the same run against the same server.

    .venv/bin/python bench/bench_ui_scale.py                    # 1,000,000 generations (SQLite)
    .venv/bin/python bench/bench_ui_scale.py --rows 20000       # a smoke run

Loads ``--rows`` generations into a SQLite file under ``bench/results/`` (with bench_dashboard's
loader: 6 models, 2,000 users, templates, runs, chats, metadata; kept and reused by later runs of the
same size), numbers them and builds their search index as migration 0015 would, puts a rare word
("kilimanjaro") in one output in a thousand, starts a real ``sightline serve`` (bench_server's
``start``), logs in, sends a run of 500 steps through ``POST /api/ingest``, and times whole HTTP
requests (p50 and p95 of ``--repeat`` sequential requests after a warm-up):

- ``GET /api/generations?q=kilimanjaro&userId=<busiest user>`` (and a word every row holds, the worst
  case for the index) against the plain ``GET /api/generations``: target p95 < 200 ms;
- the dashboard's ``GET /generations`` (logged in; the page reads its totals of the match itself),
  with no filter and searching the rare word, against the plain list: < 300 ms;
- the dashboard's ``GET /runs/<id>`` of the run of 500 steps against the plain list: < 300 ms.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_dashboard import PASSWORD, load  # noqa: E402
from bench.bench_server import start  # noqa: E402
from sightline.store import Database, migrate  # noqa: E402
from sightline.store import tables as t  # noqa: E402
from sightline.store.access.projects import create_key  # noqa: E402
from sightline.store.generations.search import backfill  # noqa: E402

RARE = "kilimanjaro"
COMMON = "lorem"  # in every output of the loader's
STEPS = 500


def prepare(url: str, rows: int) -> None:
    """The database of ``rows`` generations, numbered and indexed for search (made once per size)."""
    db = Database(url)
    migrate(db.engine)
    with db.read() as conn:
        present = conn.scalar(select(func.count()).select_from(t.generations)) or 0
    if present and present not in (rows, rows + STEPS):  # with the run a previous run sent
        sys.exit(f"{url} holds {present:,} generations, not {rows:,}: remove it or pick another URL")
    if not present:
        print(f"loading {rows:,} generations into {url}", file=sys.stderr)
        load(db, rows)
    with db.read() as conn:
        if conn.scalar(text("SELECT COUNT(*) FROM generation_search")) >= rows:
            db.engine.dispose()
            return
    started = time.perf_counter()
    with db.transaction() as conn:
        # The loader writes rows as a backup restore would, without the writer's numbers: number them
        # in time order (as migration 0006 did) and put the rare word in one output in a thousand.
        conn.execute(
            text(
                "UPDATE generations SET seq = numbered.n FROM (SELECT rowid AS r, row_number() OVER "
                "(ORDER BY ts_us, id) AS n FROM generations) AS numbered WHERE generations.rowid = numbered.r"
            )
        )
        conn.execute(text("UPDATE sequences SET value = (SELECT MAX(seq) FROM generations)"))
        conn.execute(
            text(
                "UPDATE generations SET body = json_set(body, '$.output.content', "
                f"json_extract(body, '$.output.content') || ' {RARE} offsite') WHERE seq % 1000 = 7"
            )
        )
        conn.execute(text("DELETE FROM generation_search"))
        indexed = backfill(conn, batch=5000)
    print(f"  indexed {indexed:,} generations in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    with db.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
    db.engine.dispose()


def timed(call: Callable[[], httpx.Response], repeat: int) -> tuple[float, float]:
    """(p50, p95) in seconds of ``repeat`` calls after one warm-up call; each must answer 200."""
    response = call()
    assert response.status_code == 200, (response.status_code, response.text[:500])
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = call()
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, (response.status_code, response.text[:300])
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]


def send_run(http: httpx.Client, key: str) -> str:
    """A run of :data:`STEPS` steps sent through the API (as an SDK pipeline would): its id."""
    run_id = "bench-run-500"  # the same ids each time: sent again, they are not written twice
    start_at = datetime.now(UTC) - timedelta(minutes=10)
    batch = [
        {"type": "run", "body": {"id": run_id, "userId": "user-0001", "startedAt": start_at.isoformat()}}
    ]
    for i in range(STEPS):
        batch.append(
            {
                "type": "generation",
                "body": {
                    "id": f"{run_id}-{i}",
                    "timestamp": (start_at + timedelta(milliseconds=300 * i)).isoformat(),
                    "model": {"id": "gpt-4o-mini", "provider": "openai"},
                    "input": {"type": "text", "content": [{"role": "user", "content": f"step {i}"}]},
                    "output": {"type": "text", "content": f"result of step {i}"},
                    "usage": {"promptTokens": 40, "completionTokens": 12},
                    "performance": {"latency": 280.0},
                    "runId": run_id,
                    "stepIndex": i,
                },
            }
        )
    r = http.post("/api/ingest", json={"batch": batch}, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text[:500]
    return run_id


def login(http: httpx.Client) -> None:
    page = http.get("/login")
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match, "no CSRF token on the login page"
    r = http.post("/login", data={"username": "admin", "password": PASSWORD, "csrf": match.group(1)})
    assert r.status_code == 303, r.text[:300]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--database-url", default=None, help="default: a SQLite file under bench/results/")
    args = parser.parse_args()
    url = args.database_url
    if url is None:
        results = Path(__file__).parent / "results"
        results.mkdir(exist_ok=True)
        url = f"sqlite:///{(results / f'ui-scale-{args.rows}.db').resolve()}"
    prepare(url, args.rows)
    db = Database(url)
    with db.transaction() as conn:
        key, _ = create_key(conn, "bench", "prod", f"ui-scale-{uuid.uuid4().hex[:6]}")
    db.engine.dispose()
    log = Path(url.removeprefix("sqlite:///")).with_suffix(".log")
    process, port = start(url, log)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
            login(http)
            run_id = send_run(http, key)
            api = {"Authorization": f"Bearer {key}"}
            user = "user-0001"  # the busiest user (bench_dashboard's)

            def get(path: str, **params: str) -> Callable[[], httpx.Response]:
                return lambda: http.get(path, params=params, headers=api)

            plain = timed(get("/api/generations"), args.repeat)
            figures = [
                ("search a rare word, userId filter", get("/api/generations", q=RARE, userId=user), 0.2),
                ("search a rare word, no other filter", get("/api/generations", q=RARE), 0.2),
                ("search a word of every row, userId", get("/api/generations", q=COMMON, userId=user), 0.2),
                (
                    "search a phrase, userId filter",
                    get("/api/generations", q=f'"{RARE} offsite"', userId=user),
                    0.2,
                ),
            ]

            # The page reads its totals itself (a read of their own, dashboard/generations.py).
            figures.append(("generations page with its totals", lambda: http.get("/generations"), 0.3))
            figures.append(
                (
                    "generations page searching, with totals",
                    lambda: http.get("/generations", params={"q": RARE}),
                    0.3,
                )
            )
            figures.append(
                (
                    "generations page searching a word of every row",
                    lambda: http.get("/generations", params={"q": COMMON}),
                    0.3,
                )
            )
            figures.append((f"run page of {STEPS} steps", lambda: http.get(f"/runs/{run_id}"), 0.3))
            print(f"\n{args.rows:,} generations (SQLite), p50 / p95 of {args.repeat} whole HTTP requests")
            print(
                f"  baseline GET /api/generations (plain list): "
                f"{plain[0] * 1000:.1f} / {plain[1] * 1000:.1f} ms"
            )
            for name, call, target in figures:
                p50, p95 = timed(call, args.repeat)
                verdict = "ok" if p95 < target else "OVER"
                print(
                    f"  {name:<48} {p50 * 1000:7.1f} / {p95 * 1000:7.1f} ms   ratio {p95 / plain[1]:6.2f}"
                    f"   target p95 < {target * 1000:.0f} ms: {verdict}",
                    flush=True,
                )
    finally:
        process.terminate()
        process.wait(30)


if __name__ == "__main__":
    main()
