"""Benchmark of OpenTelemetry ingest (``POST /api/otel/v1/traces``, OTLP/HTTP protobuf) against native batch
ingest (``POST /api/ingest``) of the same generations, in the same run.

Starts a real ``sightline serve`` on a temporary SQLite file. Builds ``--requests`` exports of 100 spans
each (20 traces of 5 spans: an agent root, a retrieval, and three model calls with GenAI attributes:
model, provider, messages, usage), as the OTel SDK's exporter sends them, and the native batches of the
same model calls (60 generations, their runs). Sends each from 8 clients over keep-alive connections,
alternating rounds, and prints spans stored per second against generations per second natively. The goal
is at least 50% of the native rate (an OTLP-native server measured here persisted 92 spans/s from this
kind of load).

    .venv/bin/python bench/bench_otlp.py [--requests 200] [--rounds 2]

Figures are printed, never asserted: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402

from bench.bench_server import start  # noqa: E402
from bench.loadgen import request_bytes, run  # noqa: E402
from sightline.store import Database, migrate  # noqa: E402
from sightline.store.access.projects import create_key  # noqa: E402

TRACES, CALLS = 20, 3  # per export: 20 traces of 2 + 3 spans = 100 spans


def _attr(span: Any, key: str, value: Any) -> None:
    kv = span.attributes.add()
    kv.key = key
    if isinstance(value, int):
        kv.value.int_value = value
    else:
        kv.value.string_value = str(value)


def _export(n: int) -> tuple[bytes, bytes, bytes]:
    """One OTLP export of 100 spans, the native ingest batch of the same model calls with their runs, and
    the same generations alone (no runs: the fastest native batch)."""
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    kv = resource.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "bench-agent"
    spans = resource.scope_spans.add().spans
    batch: list[dict[str, Any]] = []
    now = time.time_ns()
    for t in range(TRACES):
        trace, root = secrets.token_bytes(16), secrets.token_bytes(8)
        run_id = trace.hex()
        for i, name in enumerate(["agent", "retrieve"] + [f"chat {c}" for c in range(CALLS)]):
            span = spans.add()
            span.trace_id, span.span_id = trace, root if i == 0 else secrets.token_bytes(8)
            if i:
                span.parent_span_id = root
            span.name = name
            span.start_time_unix_nano = now + i * 1_000_000
            span.end_time_unix_nano = now + i * 1_000_000 + 800_000
            if i == 0:
                _attr(span, "user.id", f"user-{t}")
            if i >= 2:
                question = f"question {n}-{t}-{i}"
                for key, value in (
                    ("gen_ai.system", "openai"),
                    ("gen_ai.request.model", "gpt-4o-mini"),
                    ("gen_ai.prompt.0.role", "user"),
                    ("gen_ai.prompt.0.content", question),
                    ("gen_ai.completion.0.role", "assistant"),
                    ("gen_ai.completion.0.content", "an answer"),
                    ("gen_ai.usage.input_tokens", 120),
                    ("gen_ai.usage.output_tokens", 30),
                ):
                    _attr(span, key, value)
                batch.append(
                    {
                        "type": "generation",
                        "body": {
                            "model": {"id": "gpt-4o-mini", "provider": "openai"},
                            "input": {"type": "text", "content": [{"role": "user", "content": question}]},
                            "output": {"type": "text", "content": "an answer"},
                            "usage": {"promptTokens": 120, "completionTokens": 30},
                            "performance": {"latency": 0.8},
                            "runId": run_id,
                            "stepIndex": i,
                        },
                    }
                )
        batch.append({"type": "run", "body": {"id": run_id, "userId": f"user-{t}", "status": "ok"}})
    alone = [
        {
            "type": "generation",
            "body": {k: v for k, v in item["body"].items() if k not in ("runId", "stepIndex")},
        }
        for item in batch
        if item["type"] == "generation"
    ]
    return request.SerializeToString(), orjson.dumps({"batch": batch}), orjson.dumps({"batch": alone})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        db = Database(database_url)
        migrate(db.engine)
        with db.transaction() as conn:
            key, _ = create_key(conn, "bench", "prod")
        db.engine.dispose()
        process, port = start(database_url, Path(tmp) / "server.log")
        otlp_rates: list[float] = []
        native_rates: list[float] = []
        alone_rates: list[float] = []
        try:
            protobuf = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-protobuf"}
            native = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

            def feeds(count: int) -> tuple[list[bytes], list[bytes], list[bytes]]:
                otlp, batches, alone = [], [], []
                for n in range(count):
                    spans, batch, gens_only = _export(n)
                    otlp.append(request_bytes("POST", "/api/otel/v1/traces", "bench", protobuf, spans))
                    batches.append(request_bytes("POST", "/api/ingest", "bench", native, batch))
                    alone.append(request_bytes("POST", "/api/ingest", "bench", native, gens_only))
                return otlp, batches, alone

            for feed in feeds(10):
                asyncio.run(run("127.0.0.1", port, feed, connections=8, total=len(feed)))
            for _ in range(options.rounds):
                otlp, batches, alone = feeds(options.requests)
                result = asyncio.run(run("127.0.0.1", port, alone, connections=8, total=len(alone)))
                assert result.errors == 0 and set(result.statuses) == {200}, result.statuses
                alone_rates.append(result.rate * TRACES * CALLS)
                result = asyncio.run(run("127.0.0.1", port, batches, connections=8, total=len(batches)))
                assert result.errors == 0 and set(result.statuses) == {200}, result.statuses
                native_rates.append(result.rate * TRACES * CALLS)
                result = asyncio.run(run("127.0.0.1", port, otlp, connections=8, total=len(otlp)))
                assert result.errors == 0 and set(result.statuses) == {200}, result.statuses
                otlp_rates.append(result.rate * TRACES * (2 + CALLS))
        finally:
            process.terminate()
            process.wait(30)
    spans, gens, alone_gens = max(otlp_rates), max(native_rates), max(alone_rates)
    calls = spans * CALLS / (2 + CALLS)
    print(f"8 clients, best of {options.rounds} rounds of {options.requests} requests:")
    print(f"  POST /api/ingest, 60 generations + their 20 runs (baseline)  {gens:,.0f} generations/s")
    print(f"  POST /api/ingest, the 60 generations alone                   {alone_gens:,.0f} generations/s")
    print(f"  POST /api/otel/v1/traces, 100 spans (20 traces)              {spans:,.0f} spans/s")
    print(f"    of which model calls                                      {calls:,.0f} generations/s")
    print(f"ratio spans/s / native generations/s with runs: {spans / gens:.2f} (goal >= 0.50)")
    print(f"ratio spans/s / native generations/s alone:     {spans / alone_gens:.2f}")


if __name__ == "__main__":
    main()
