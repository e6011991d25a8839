"""``POST /api/otel/v1/traces`` against a real ``sightline serve``: the real OpenTelemetry SDK and OTLP/HTTP
exporter with the OpenInference OpenAI instrumentor around the real ``openai`` client; GenAI semantic
conventions (1.36 names and the current ones) by hand in OTLP/JSON, gzipped or not; bad input."""

from __future__ import annotations

import gzip
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openinference.instrumentation import using_attributes
from openinference.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.compat import gentrace_support
from tests.conftest import ServerProcess
from tests.fake_openai import FakeOpenAI

upstream = gentrace_support.upstream


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("otlp-server")
    yield from gentrace_support.serve_sightline(home, {"SIGHTLINE_OTLP_MAX_SPANS": "500"})


def _get(server: ServerProcess, path: str, **params: str) -> Any:
    r = httpx.get(f"{server.url}{path}", params=params, headers={"Authorization": f"Bearer {server.key}"})
    assert r.status_code == 200, r.text
    return r.json()


def _wait(server: ServerProcess, path: str, ready: Any, **params: str) -> Any:
    deadline = time.monotonic() + 15
    while True:
        found = _get(server, path, **params)
        if ready(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_the_openinference_instrumentor_and_the_otlp_exporter(
    server: ServerProcess, upstream: FakeOpenAI
) -> None:
    provider = TracerProvider(
        resource=Resource.create({"service.name": "checkout-bot", "deployment.environment": "test"})
    )
    exporter = OTLPSpanExporter(
        endpoint=f"{server.url}/api/otel/v1/traces",
        headers={"x-api-key": server.key},
        compression=Compression.Gzip,
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    tracer = provider.get_tracer("app")
    user = f"user-{secrets.token_hex(4)}"
    try:
        client = openai.OpenAI(api_key="sk-test", base_url=upstream.base_url)
        with (
            using_attributes(user_id=user, session_id="session-42"),
            tracer.start_as_current_span("answer-ticket") as root,
        ):
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Where is my order?"},
                ],
                temperature=0.1,
            )
            trace_id = format(root.get_span_context().trace_id, "032x")
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    found = _wait(server, "/api/generations", lambda f: f["data"], userId=user)["data"]
    assert len(found) == 1
    gen = _get(server, f"/api/generations/{found[0]['id']}")
    assert gen["model"]["id"] == "gpt-4o-mini" and gen["runId"] == trace_id
    assert gen["input"]["content"][-1] == {"role": "user", "content": "Where is my order?"}
    assert gen["output"]["content"] == "Fake reply to: Where is my order?"
    assert gen["usage"]["promptTokens"] > 0 and gen["usage"]["cost"] > 0
    assert gen["parameters"]["temperature"] == 0.1
    assert (
        gen["metadata"]["service.name"]["value"] == "checkout-bot"
        and gen["metadata"]["sessionId"] == "session-42"
    )
    run = _get(server, f"/api/runs/{trace_id}")
    assert run["userId"] == user and run["pipelineSlug"] == "answer-ticket"
    kinds = [s["kind"] for s in run["steps"]]
    assert sorted(kinds) == ["generation", "step"]
    step = next(s for s in run["steps"] if s["kind"] == "step")
    assert step["name"] == "answer-ticket" and step["spanId"]


def _span(
    trace: str,
    span: str,
    name: str,
    attributes: dict[str, Any],
    *,
    parent: str = "",
    start: int = 0,
    events: list[Any] | None = None,
) -> dict[str, Any]:
    def value(v: Any) -> dict[str, Any]:
        if isinstance(v, bool):
            return {"boolValue": v}
        if isinstance(v, int):
            return {"intValue": str(v)}
        if isinstance(v, float):
            return {"doubleValue": v}
        return {"stringValue": str(v)}

    now = time.time_ns() + start
    return {
        "traceId": trace,
        "spanId": span,
        "parentSpanId": parent,
        "name": name,
        "kind": 3,
        "startTimeUnixNano": str(now),
        "endTimeUnixNano": str(now + 250_000_000),
        "attributes": [{"key": k, "value": value(v)} for k, v in attributes.items()],
        "events": events or [],
        "status": {},
    }


def _parts(role: str, text: str) -> str:
    """Messages as the current GenAI conventions write them: a JSON attribute of parts."""
    import orjson

    return orjson.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}]).decode()


def _export(spans: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "rag-service"}}]
                },
                "scopeSpans": [{"scope": {"name": "by-hand"}, "spans": spans}],
            }
        ]
    }


def _post(
    server: ServerProcess,
    body: bytes,
    *,
    gz: bool = False,
    content_type: str = "application/json",
    key: str | None = None,
) -> httpx.Response:
    headers = {"Content-Type": content_type, "Authorization": f"Bearer {key or server.key}"}
    if gz:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    return httpx.post(f"{server.url}/api/otel/v1/traces", content=body, headers=headers, timeout=30)


@pytest.mark.parametrize("gz", [False, True])
def test_genai_conventions_in_otlp_json(server: ServerProcess, gz: bool) -> None:
    import orjson

    trace = secrets.token_hex(16)
    root, old, new, tool = (secrets.token_hex(8) for _ in range(4))
    spans = [
        _span(trace, root, "rag-pipeline", {"user.id": "carol", "input.value": "question"}, start=0),
        _span(
            trace,
            old,
            "chat gpt-4o",
            {
                "gen_ai.system": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.request.max_tokens": 64,
                "gen_ai.prompt.0.role": "user",
                "gen_ai.prompt.0.content": "Summarise the doc",
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.content": "A summary.",
                "gen_ai.usage.input_tokens": 100,
                "gen_ai.usage.output_tokens": 20,
            },
            parent=root,
            start=1_000_000,
        ),
        _span(
            trace,
            tool,
            "retrieve",
            {"input.value": '{"query": "doc"}', "output.value": "3 chunks"},
            parent=root,
            start=2_000_000,
        ),
        _span(
            trace,
            new,
            "chat gpt-4o-mini",
            {
                "gen_ai.provider.name": "openai",
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.input.messages": _parts("user", "Now in French"),
                "gen_ai.output.messages": _parts("assistant", "Un résumé."),
                "gen_ai.usage.input_tokens": 30,
                "gen_ai.usage.output_tokens": 5,
            },
            parent=root,
            start=3_000_000,
        ),
    ]
    r = _post(server, orjson.dumps(_export(spans)), gz=gz)
    assert r.status_code == 200, r.text
    assert r.json() == {}
    run = _get(server, f"/api/runs/{trace}")
    assert run["userId"] == "carol" and run["metadata"]["service.name"]["value"] == "rag-service"
    names = [s.get("name") or s["model"]["id"] for s in run["steps"]]
    assert names == ["rag-pipeline", "gpt-4o", "retrieve", "gpt-4o-mini"]
    old_gen, new_gen = (s for s in run["steps"] if s["kind"] == "generation")
    assert old_gen["input"]["content"] == [{"role": "user", "content": "Summarise the doc"}]
    assert old_gen["output"]["content"] == "A summary." and old_gen["usage"]["promptTokens"] == 100
    assert old_gen["usage"]["cost"] > 0 and old_gen["parameters"]["maxTokens"] == 64
    assert new_gen["input"]["content"] == [{"role": "user", "content": "Now in French"}]
    assert new_gen["output"]["content"] == "Un résumé."
    retrieve = run["steps"][2]
    assert (
        retrieve["inputs"] == {"query": "doc"}
        and retrieve["outputs"] == "3 chunks"
        and retrieve["parentSpanId"] == root
    )
    assert _get(server, "/api/generations", userId="carol")["data"]
    # Each model call keeps its own place in the trace (the run's metadata never overrides it).
    for span, step in ((old, old_gen), (new, new_gen)):
        record = _get(server, f"/api/generations/{step['id']}")
        meta = {k: v["value"] if isinstance(v, dict) else v for k, v in record["metadata"].items()}
        assert (meta["spanId"], meta["parentSpanId"]) == (span, root), run["metadata"]


def test_a_trace_split_over_two_exports_keeps_every_step(server: ServerProcess) -> None:
    import orjson

    trace = secrets.token_hex(16)
    first = _span(trace, secrets.token_hex(8), "step-one", {}, start=0)
    second = _span(trace, secrets.token_hex(8), "step-two", {}, start=1_000_000)
    assert _post(server, orjson.dumps(_export([first]))).status_code == 200
    assert _post(server, orjson.dumps(_export([second]))).status_code == 200
    run = _get(server, f"/api/runs/{trace}")
    assert [s["name"] for s in run["steps"]] == ["step-one", "step-two"]


def test_bad_input_is_refused_in_otlp_shape(server: ServerProcess) -> None:
    import orjson
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    r = _post(server, b"\xff\xff\xff garbage", content_type="application/x-protobuf")
    assert r.status_code == 400 and r.headers["content-type"] == "application/x-protobuf"
    assert b"not an OTLP protobuf" in r.content
    r = _post(server, b"{not json")
    assert r.status_code == 400 and r.json()["code"] == 3 and "not valid JSON" in r.json()["message"]
    r = _post(server, orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}))
    assert r.status_code == 400 and "traceId" in r.json()["message"]
    assert _post(server, b"{}", key="sl_wrong").status_code == 401
    r = _post(server, b"not gzip", gz=False, content_type="application/json")
    assert r.status_code == 400
    bomb = gzip.compress(b"0" * (30 * 1024 * 1024))
    r = httpx.post(
        f"{server.url}/api/otel/v1/traces",
        content=bomb,
        headers={
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "Authorization": f"Bearer {server.key}",
        },
    )
    assert r.status_code == 413
    trace = secrets.token_hex(16)
    many = [_span(trace, secrets.token_hex(8), f"s{i}", {}) for i in range(501)]
    r = _post(server, orjson.dumps(_export(many)))
    assert r.status_code == 413 and "otlp_max_spans" in r.json()["message"]
    # One bad span beside good ones: refused alone, counted as the specification says.
    good_trace = secrets.token_hex(16)
    good = _span(good_trace, secrets.token_hex(8), "fine", {})
    bad = _span(good_trace, "abcd", "short id", {})
    r = _post(server, orjson.dumps(_export([good, bad])))
    assert r.status_code == 200 and r.json()["partialSuccess"]["rejectedSpans"] == "1"
    assert [s["name"] for s in _get(server, f"/api/runs/{good_trace}")["steps"]] == ["fine"]
    # The same in protobuf: the answer is an ExportTraceServiceResponse.
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    export = _export([_span(secrets.token_hex(16), secrets.token_hex(8), "pb", {})])
    for span in export["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        span["traceId"] = __import__("base64").b64encode(bytes.fromhex(span["traceId"])).decode()
        span["spanId"] = __import__("base64").b64encode(bytes.fromhex(span["spanId"])).decode()
        span["parentSpanId"] = ""
    json_format.ParseDict(export, request)
    r = _post(server, request.SerializeToString(), content_type="application/x-protobuf")
    assert r.status_code == 200
    answer = ExportTraceServiceResponse()
    answer.ParseFromString(r.content)
    assert answer.partial_success.rejected_spans == 0
