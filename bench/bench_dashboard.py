"""Dashboard server time on a large database: the generations page with a user filter, and analytics.

    .venv/bin/python bench/bench_dashboard.py [--rows 1000000] [--days 30] [--database-url URL] [--repeat 5]

Loads ``--rows`` generations spread over ``--days`` days (6 models, 2,000 users, 24 templates, a few
percent errors and cache hits, runs, chats and custom metadata) into a SQLite file under
``bench/results/`` (kept, and reused by later runs with the same row count and span), then times
the dashboard pages in process through ASGI (no sockets: server time only) and prints each figure
with its ratio to a baseline measured in the same run:

- generations pages (a user filter, a metadata filter, no filter, a page deep in the table) against
  the API's ``GET /api/generations`` with the same user filter;
- analytics and prompts pages for 30 days against one ``count(*)`` over the same 30 days.

With the default ``--days 30`` every row is inside the analytics range: the worst case.

The figures to reach (issue 5): generations < 300 ms, analytics (30 days) < 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from sightline.settings import Settings
from sightline.store import Database, migrate
from sightline.store import tables as t
from sightline.store.access.projects import create_key, create_user, ensure_project
from sightline.store.generations.records import iso, metadata_rows, template_version

DAY_US = 86_400 * 1_000_000
MODELS = [
    ("gpt-4o", "openai", 2.5e-6, 10e-6),
    ("gpt-4o-mini", "openai", 0.15e-6, 0.6e-6),
    ("o3-mini", "openai", 1.1e-6, 4.4e-6),
    ("claude-sonnet-4", "anthropic", 3e-6, 15e-6),
    ("claude-haiku-3.5", "anthropic", 0.8e-6, 4e-6),
    ("gemini-2.0-flash", "google", 0.1e-6, 0.4e-6),
]
TEMPLATES = [f"template-{i:02d}" for i in range(24)]
PASSWORD = "bench-password"


def _templates() -> dict[str, list[tuple[str, dict[str, Any]]]]:
    out: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for name in TEMPLATES:
        versions = []
        for v in range(3):
            content = {"chat": [{"role": "user", "content": f"{name} v{v}: answer about {{topic}} briefly"}]}
            versions.append((template_version(json.dumps(content)), content))
        out[name] = versions
    return out


def _rows(
    count: int, project_id: int, end_us: int, days: int, seed: int = 7
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any] | None]]:
    """Generation rows (the columns ``records.generation_rows`` fills), with metadata and feedback rows."""
    rnd = random.Random(seed)
    templates = _templates()
    span = days * DAY_US
    filler = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 4
    for i in range(count):
        ts = end_us - int(span * (i + 0.5) / count) - rnd.randrange(1000)
        model, provider, p_in, p_out = MODELS[min(int(rnd.paretovariate(1.6)) - 1, len(MODELS) - 1)]
        prompt_tokens, completion_tokens = rnd.randint(50, 3000), rnd.randint(5, 800)
        cache_hit = rnd.random() < 0.08
        error = rnd.random() < 0.03
        cost = 0.0 if cache_hit else prompt_tokens * p_in + completion_tokens * p_out
        latency = 5.0 if cache_hit else rnd.lognormvariate(6.6, 0.6)
        ttft = None if cache_hit else latency * rnd.uniform(0.1, 0.4)
        user = f"user-{int(rnd.paretovariate(1.2)) % 2000:04d}"
        gen_id = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
        name = TEMPLATES[rnd.randrange(len(TEMPLATES))] if rnd.random() < 0.7 else None
        template = None
        if name is not None:
            version, content = templates[name][min(2, int((end_us - ts) / span * 3))]
            template = {"name": name, "version": version, **content, "params": {"topic": f"topic {i % 97}"}}
        run_id = f"run-{i // 4}" if i % 5 == 0 else None
        chat_id = f"chat-{i // 3}" if i % 3 == 0 else None
        metadata = {
            "userId": user,
            "plan": {"type": "string", "value": rnd.choice(["free", "pro", "team"])},
            "ticket": {"type": "url", "url": f"https://tracker.example/{i % 5000}", "text": f"T-{i % 5000}"},
        }
        body: dict[str, Any] = {
            "id": gen_id,
            "timestamp": iso(ts),
            "model": {"id": model, "provider": provider},
            "input": {
                "type": "text",
                "content": [
                    {"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": f"Question {i}: {filler[: rnd.randint(40, 220)]}"},
                ],
            },
            "output": {"type": "text", "content": filler[: rnd.randint(20, 240)]},
            "parameters": {"temperature": 0.7, "maxTokens": 1024},
            "usage": {
                "promptTokens": prompt_tokens,
                "completionTokens": completion_tokens,
                "totalTokens": prompt_tokens + completion_tokens,
                "cost": cost,
                "currency": "USD",
            },
            "metadata": metadata,
            "performance": {"latency": latency, "timeToFirstToken": ttft},
            "status": "error" if error else "ok",
            "cacheHit": cache_hit,
        }
        if template:
            body["template"] = template
        if error:
            body["error"] = {"type": "RateLimitError", "message": "rate limited", "statusCode": 429}
        feedback = None
        rating = thumbs = None
        if rnd.random() < 0.02:
            rating, thumbs = rnd.randint(1, 5), rnd.choice(["up", "down"])
            feedback = {
                "project_id": project_id,
                "generation_id": gen_id,
                "ts_us": ts + 60_000_000,
                "rating": rating,
                "score": None,
                "thumbs": thumbs,
                "user_id": user,
                "body": {"generationId": gen_id, "rating": rating, "thumbs": thumbs, "timestamp": iso(ts)},
            }
        row = {
            "id": gen_id,
            "project_id": project_id,
            "environment": "prod",
            "ts_us": ts,
            "model_id": model,
            "provider": provider,
            "user_id": user,
            "session_id": None,
            "run_id": run_id,
            "chat_id": chat_id,
            "step_index": i % 4 if run_id else None,
            "template_name": name,
            "template_version": template["version"] if template else None,
            "status": "error" if error else "ok",
            "error_type": "RateLimitError" if error else None,
            "cache_hit": cache_hit,
            "output_type": "text",
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "cost": cost,
            "cost_saved": (prompt_tokens * p_in + completion_tokens * p_out) if cache_hit else None,
            "latency_ms": latency,
            "ttft_ms": ttft,
            "feedback_rating": rating,
            "feedback_score": None,
            "feedback_thumbs": thumbs,
            "body": body,
        }
        meta = {k: v for k, v in metadata.items() if k != "userId"}
        meta_rows = metadata_rows(gen_id, project_id, ts, meta)
        yield row, [dict(zip(t.METADATA_COLUMNS, m, strict=True)) for m in meta_rows], feedback


def load(db: Database, count: int, days: int = 30, chunk: int = 20_000) -> None:
    """Insert ``count`` generations (and their metadata, feedback, prompt versions) with executemany."""
    end_us = time.time_ns() // 1000
    with db.transaction() as conn:
        project_id = ensure_project(conn, "bench", "prod")
        create_key(conn, "bench", "prod")
        create_user(conn, "admin", PASSWORD, "admin")
        prompts = [
            {
                "project_id": project_id,
                "name": name,
                "version": v,
                "created_us": end_us - 30 * DAY_US,
                "body": content,
            }
            for name, versions in _templates().items()
            for v, content in versions
        ]
        conn.execute(t.prompt_versions.insert(), prompts)
    started = time.perf_counter()
    batch: list[dict[str, Any]] = []
    metas: list[dict[str, Any]] = []
    feedback: list[dict[str, Any]] = []
    done = 0

    def flush() -> None:
        with db.transaction() as conn:
            conn.execute(t.generations.insert(), batch)
            conn.execute(t.generation_metadata.insert(), metas)
            if feedback:
                conn.execute(t.feedback.insert(), feedback)
        batch.clear()
        metas.clear()
        feedback.clear()

    for row, meta, fb in _rows(count, project_id, end_us, days):
        batch.append(row)
        metas.extend(meta)
        if fb is not None:
            feedback.append(fb)
        if len(batch) >= chunk:
            done += len(batch)
            flush()
            rate = done / (time.perf_counter() - started)
            print(f"\r  loaded {done:,} of {count:,} ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)
    if batch:
        flush()
    print(f"\r  loaded {count:,} generations in {time.perf_counter() - started:.0f}s", file=sys.stderr)


async def _timed(call: Callable[[], Awaitable[httpx.Response]], repeat: int) -> float:
    """Median seconds of ``repeat`` calls (after one warm-up call)."""
    response = await call()
    assert response.status_code == 200, (response.status_code, response.text[:500])
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = await call()
        times.append(time.perf_counter() - started)
        assert response.status_code == 200
    return statistics.median(times)


async def measure(database_url: str, repeat: int) -> list[tuple[str, float, str, float]]:
    from sightline.server.app import create_app
    from sightline.store.generations.reads.queries import encode_cursor

    settings = Settings(database_url=database_url, environment="development")
    app = create_app(settings)
    db: Database = app.state.db
    g = t.generations
    with db.transaction() as conn:
        secret, _ = create_key(conn, "bench", "prod", "bench-run")
    with db.read() as conn:
        project_id = conn.scalar(select(t.projects.c.id).where(t.projects.c.name == "bench"))
        user = "user-0001"  # the busiest user: the one whose filtered listing reads the most rows
        user_rows = conn.scalar(select(func.count()).where(g.c.project_id == project_id, g.c.user_id == user))
        total = conn.scalar(select(func.count()).where(g.c.project_id == project_id)) or 0
        middle = conn.execute(
            select(g.c.ts_us, g.c.id)
            .where(g.c.project_id == project_id)
            .order_by(g.c.ts_us)
            .limit(1)
            .offset(total // 2)
        ).one()
    deep = encode_cursor(middle.ts_us, middle.id)
    print(f"  {user} has {user_rows:,} generations", file=sys.stderr)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=120) as http:
            login = await http.get("/login")
            match = re.search(r'name="csrf" value="([^"]+)"', login.text)
            assert match, "no CSRF token on the login page"
            r = await http.post(
                "/login", data={"username": "admin", "password": PASSWORD, "csrf": match.group(1)}
            )
            assert r.status_code == 303, r.text
            api = {"Authorization": f"Bearer {secret}"}
            gen_api = await _timed(
                lambda: http.get("/api/generations", params={"userId": user}, headers=api), repeat
            )
            pages = {
                "generations page, userId filter": {"userId": user},
                "generations page, metadata filter": {"meta": "plan=team"},
                "generations page, no filter": {},
                "generations page, half-way down": {"cursor": deep},
            }

            def listing(params: dict[str, str]) -> Callable[[], Awaitable[httpx.Response]]:
                return lambda: http.get("/generations", params=params)

            timed = [(name, await _timed(listing(params), repeat)) for name, params in pages.items()]
            analytics = await _timed(lambda: http.get("/analytics", params={"range": "30d"}), repeat)
            prompts = await _timed(lambda: http.get("/prompts", params={"range": "30d"}), repeat)

    def count_30_days() -> Any:
        now = time.time_ns() // 1000
        with db.read() as conn:
            return conn.scalar(
                select(func.count()).where(g.c.project_id == project_id, g.c.ts_us >= now - 30 * DAY_US)
            )

    count_30_days()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        count_30_days()
        times.append(time.perf_counter() - started)
    db.engine.dispose()
    baseline = statistics.median(times)
    return [
        *[(name, seconds, "GET /api/generations?userId=", gen_api) for name, seconds in timed],
        ("analytics page, 30 days", analytics, "count(*) over 30 days", baseline),
        ("prompts page, 30 days", prompts, "count(*) over 30 days", baseline),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30, help="the span the rows are spread over")
    parser.add_argument("--database-url", default=None, help="default: a SQLite file under bench/results/")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    url = args.database_url
    if url is None:
        results = Path(__file__).parent / "results"
        results.mkdir(exist_ok=True)
        suffix = "" if args.days == 30 else f"-{args.days}d"
        url = f"sqlite:///{(results / f'dashboard-{args.rows}{suffix}.db').resolve()}"
    db = Database(url)
    migrate(db.engine)
    with db.read() as conn:
        present = conn.scalar(select(func.count()).select_from(t.generations)) or 0
    if present == 0:
        print(f"loading {args.rows:,} generations over {args.days} days into {url}", file=sys.stderr)
        load(db, args.rows, args.days)
    elif present != args.rows:
        sys.exit(f"{url} holds {present:,} generations, not {args.rows:,}: remove it or pick another URL")
    db.engine.dispose()
    figures = asyncio.run(measure(url, args.repeat))
    print(
        f"\n{args.rows:,} generations over {args.days} days, median of {args.repeat}"
        " (server time, in process)"
    )
    for name, seconds, baseline_name, baseline in figures:
        print(
            f"  {name:<36} {seconds * 1000:8.1f} ms  {seconds / baseline:7.1f}x  {baseline_name} "
            f"({baseline * 1000:.1f} ms)"
        )


if __name__ == "__main__":
    main()
