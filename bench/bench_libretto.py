"""Benchmark of libretto-openai's event ingest (``POST /compat/libretto/event``, one event a request) against
single ``POST /api/generations`` posts of the same calls, from 32 clients, in the same run.

Starts a real ``sightline serve`` on a temporary SQLite file, makes ``--requests`` libretto events (the
shape libretto-openai 1.1.3 posts: template, parameters, model parameters, the raw ChatCompletion with
usage, a feedback key) and as many native generations of the same calls, then sends each kind in turn
(warm-up first, then alternating rounds) over 32 keep-alive connections and prints requests/s and the
ratio. The goal is at least 80% of the native rate. Each event's feedback key is kept as its generation's
metadata (so feedback finds it), and the native posts carry the same metadata: the same records are
written both ways. ``--no-feedback-key`` leaves the key out of both.

    .venv/bin/python bench/bench_libretto.py [--requests 6000] [--rounds 2]

Figures are printed, never asserted: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson  # noqa: E402

from bench.bench_server import start  # noqa: E402
from bench.loadgen import request_bytes, run  # noqa: E402
from sightline.store import Database, migrate  # noqa: E402
from sightline.store.access.projects import create_key  # noqa: E402


def _call(i: int) -> tuple[dict[str, object], dict[str, object]]:
    sport = f"sport {i}"
    raw = {
        "id": f"chatcmpl-{i}",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "⚽"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 2, "total_tokens": 22},
    }
    chat = [{"role": "user", "content": "Show me an emoji that matches the sport: {sport}"}]
    event = {
        "apiName": "sport-emoji",
        "params": {"sport": sport},
        "prompt": {},
        "promptEventId": str(uuid.uuid4()),
        "modelParameters": {
            "modelProvider": "openai",
            "model": "gpt-4o-mini",
            "modelType": "chat",
            "temperature": 0.3,
        },
        "feedbackKey": str(uuid.uuid4()) if "--no-feedback-key" not in sys.argv else None,
        "promptTemplateChat": chat,
        "response": "⚽",
        "responseTime": 412.5,
        "rawResponse": raw,
    }
    native = {
        "id": str(uuid.uuid4()),
        "model": {"id": "gpt-4o-mini", "version": "gpt-4o-mini-2024-07-18", "provider": "openai"},
        "input": {
            "type": "text",
            "content": [{"role": "user", "content": f"Show me an emoji that matches the sport: {sport}"}],
        },
        "output": {"type": "text", "content": "⚽"},
        "parameters": {"temperature": 0.3},
        "template": {"name": "sport-emoji", "chat": chat, "params": {"sport": sport}},
        "usage": {"promptTokens": 20, "completionTokens": 2},
        "performance": {"latency": 412.5},
    }
    if event["feedbackKey"]:  # the same record: the event's feedback key is kept as its metadata
        native["metadata"] = {"librettoFeedbackKey": event["feedbackKey"]}
    return event, native


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-feedback-key", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        db = Database(database_url)
        migrate(db.engine)
        with db.transaction() as conn:
            key, _ = create_key(conn, "bench", "prod")
        db.engine.dispose()
        process, port = start(database_url, Path(tmp) / "server.log")
        try:
            auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            plain = {"Content-Type": "application/json"}
            rates: dict[str, list[float]] = {"libretto": [], "native": []}

            def feeds(n: int) -> tuple[list[bytes], list[bytes]]:
                events, natives = [], []
                for i in range(n):
                    event, native = _call(i)
                    event["apiKey"] = key
                    events.append(
                        request_bytes("POST", "/compat/libretto/event", "bench", plain, orjson.dumps(event))
                    )
                    natives.append(
                        request_bytes("POST", "/api/generations", "bench", auth, orjson.dumps(native))
                    )
                return events, natives

            warm_events, warm_natives = feeds(500)
            for feed in (warm_events, warm_natives):
                asyncio.run(run("127.0.0.1", port, feed, connections=32, total=len(feed)))
            for _ in range(options.rounds):
                events, natives = feeds(options.requests)
                for name, feed in (("native", natives), ("libretto", events)):
                    result = asyncio.run(run("127.0.0.1", port, feed, connections=32, total=len(feed)))
                    assert result.errors == 0 and set(result.statuses) <= {200, 201}, result.statuses
                    rates[name].append(result.rate)
        finally:
            process.terminate()
            process.wait(30)
    native, libretto = max(rates["native"]), max(rates["libretto"])
    print(f"single posts from 32 clients, best of {options.rounds} rounds of {options.requests}:")
    print(f"  POST /api/generations (baseline)   {native:,.0f} req/s")
    print(f"  POST /compat/libretto/event         {libretto:,.0f} req/s")
    print(f"ratio libretto / native: {libretto / native:.2f} (goal >= 0.80)")


if __name__ == "__main__":
    main()
