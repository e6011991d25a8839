"""The background exporters: one per destination, bounded queue, batching, gzip when it pays,
retries, flush deadlines, fork."""

from __future__ import annotations

import datetime
import gzip
import http.server
import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import sightline
from sightline.sdk import _sender, _worker
from sightline.sdk._config import Destination
from sightline.sdk._encode import encode
from sightline.sdk._worker import Exporter
from tests.fake_openai import FakeOpenAI
from tests.sdk.conftest import USER, Capture, config

SETTINGS: dict[str, Any] = {
    "server_url": "http://sightline.test",
    "api_key": "sl_k",
    "max_batch_items": 10,
    "flush_interval": 0.05,
    "max_queue_size": 1000,
    "exit_timeout": 1.0,
}


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sender, "_BACKOFF_BASE", 0.001)
    monkeypatch.setattr(_sender, "_BACKOFF_CAP", 0.01)


def _exporter(handler: Any, **settings: Any) -> Exporter:
    return Exporter(Destination(**{**SETTINGS, **settings}), encode, httpx.MockTransport(handler))


def _body(request: httpx.Request) -> Any:
    raw = request.content
    return json.loads(gzip.decompress(raw) if request.headers.get("content-encoding") == "gzip" else raw)


@pytest.fixture
def cap() -> Capture:
    return Capture()


@pytest.fixture
def exporters() -> Iterator[list[Exporter]]:
    made: list[Exporter] = []
    yield made
    for exporter in made:
        exporter.close(1)


def _run(i: int, size: int = 0) -> dict[str, Any]:
    return {"id": f"run-{i}", "status": "ok", "metadata": {"pad": "x" * size} if size else {}}


def test_batches_by_count(cap: Capture, exporters: list[Exporter]) -> None:
    exporter = _exporter(cap.handler)
    exporters.append(exporter)
    for i in range(25):
        exporter.submit("run", _run(i))
    assert exporter.flush(5)
    sizes = [len(_body(r)["batch"]) for r in cap.requests]
    # At most max_batch_items a batch; how the 25 split depends on when the exporter thread woke
    # ([10, 10, 5] on a quiet machine, [10, 2, 10, 3] once on a busy one).
    assert max(sizes) <= 10 and sum(sizes) == 25 and len(sizes) >= 3, sizes
    assert [b["id"] for b in cap.of("run")] == [f"run-{i}" for i in range(25)]
    assert exporter.stats().sent == 25


def test_batches_by_bytes(cap: Capture, exporters: list[Exporter]) -> None:
    exporter = _exporter(cap.handler, max_batch_bytes=5_000)
    exporters.append(exporter)
    for i in range(4):
        exporter.submit("run", _run(i, size=2_000))
    assert exporter.flush(5)
    assert len(cap.requests) == 2
    assert all(len(_body(r)["batch"]) == 2 for r in cap.requests)
    assert [b["id"] for b in cap.of("run")] == [f"run-{i}" for i in range(4)]


@pytest.mark.parametrize(
    ("server_url", "compress", "size", "gzipped"),
    [
        ("http://sightline.test", None, 2_000, True),  # another machine: bytes on the wire cost
        ("http://10.1.2.3:8000", None, 2_000, True),
        ("http://sightline.test", None, 10, False),  # too small to pay
        ("http://127.0.0.1:8000", None, 2_000, False),  # this machine: it costs CPU and saves nothing
        ("http://localhost:8000", None, 2_000, False),
        ("http://[::1]:8000", None, 2_000, False),
        ("http://sightline.test", False, 2_000, False),  # as asked
        ("http://127.0.0.1:8000", True, 2_000, True),
    ],
)
def test_compresses_only_when_it_pays(
    cap: Capture,
    exporters: list[Exporter],
    server_url: str,
    compress: bool | None,
    size: int,
    gzipped: bool,
) -> None:
    exporter = _exporter(cap.handler, server_url=server_url, compress=compress)
    exporters.append(exporter)
    exporter.submit("run", _run(1, size=size))
    assert exporter.flush(5)
    (request,) = cap.requests
    assert (request.headers.get("content-encoding") == "gzip") is gzipped
    assert cap.of("run")[0]["id"] == "run-1"


def test_the_compression_choice_follows_the_client_configuration() -> None:
    near = config(server_url="http://127.0.0.1:8000").resolved().destination()
    far = config(server_url="https://sightline.example.com").resolved().destination()
    forced = config(server_url="http://127.0.0.1:8000", compress=True).resolved().destination()
    assert [_sender.compresses(d) for d in (near, far, forced)] == [False, True, True]


def test_sends_within_the_interval_without_a_flush(cap: Capture, exporters: list[Exporter]) -> None:
    exporter = _exporter(cap.handler, flush_interval=0.05)
    exporters.append(exporter)
    exporter.submit("run", _run(1))
    deadline = time.monotonic() + 2
    while not cap.items and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cap.of("run")[0]["id"] == "run-1"


@pytest.mark.parametrize("status", [500, 503, 429])
def test_retries_server_errors_and_rate_limits(
    cap: Capture, exporters: list[Exporter], fast_backoff: None, status: int
) -> None:
    failures = [status, status]

    def answer(request: httpx.Request, batch: list[dict[str, Any]]) -> httpx.Response:
        return httpx.Response(failures.pop()) if failures else httpx.Response(200)

    cap.answer = answer
    exporter = _exporter(cap.handler)
    exporters.append(exporter)
    exporter.submit("run", _run(1))
    assert exporter.flush(5)
    assert len(cap.requests) == 3
    stats = exporter.stats()
    assert (stats.sent, stats.retries, stats.failed) == (1, 2, 0)


def test_retries_network_errors(cap: Capture, exporters: list[Exporter], fast_backoff: None) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) < 3:
            raise httpx.ConnectError("refused", request=request)
        return cap.handler(request)

    exporter = _exporter(handler)
    exporters.append(exporter)
    exporter.submit("run", _run(1))
    assert exporter.flush(5)
    assert exporter.stats().sent == 1


def test_never_retries_other_client_errors(
    cap: Capture, exporters: list[Exporter], fast_backoff: None
) -> None:
    cap.answer = lambda request, batch: httpx.Response(
        401, json={"error": {"type": "auth", "message": "bad key"}}
    )
    exporter = _exporter(cap.handler)
    exporters.append(exporter)
    exporter.submit("run", _run(1))
    assert exporter.flush(5)
    assert len(cap.requests) == 1
    assert exporter.stats().rejected == 1


def test_items_are_answered_one_by_one(exporters: list[Exporter], fast_backoff: None) -> None:
    seen: list[list[str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        batch = json.loads(request.content)["batch"]
        seen.append([item["body"]["id"] for item in batch])
        statuses = {"run-0": 201, "run-1": 400, "run-2": 503} if len(seen) == 1 else {"run-2": 201}
        results = [{"index": i, "status": statuses[item["body"]["id"]]} for i, item in enumerate(batch)]
        return httpx.Response(200, json={"results": results})

    exporter = _exporter(handler)
    exporters.append(exporter)
    for i in range(3):
        exporter.submit("run", _run(i))
    assert exporter.flush(5)
    assert seen == [["run-0", "run-1", "run-2"], ["run-2"]]
    stats = exporter.stats()
    assert (stats.sent, stats.rejected) == (2, 1)


def test_too_large_batches_are_split(exporters: list[Exporter]) -> None:
    sizes: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        batch = json.loads(request.content)["batch"]
        sizes.append(len(batch))
        if len(batch) > 2:
            return httpx.Response(413)
        return httpx.Response(200, json={"results": [{"index": i, "status": 201} for i in range(len(batch))]})

    exporter = _exporter(handler)
    exporters.append(exporter)
    for i in range(5):
        exporter.submit("run", _run(i))
    assert exporter.flush(5)
    assert exporter.stats().sent == 5
    assert sizes[0] == 5


def test_gives_up_after_the_retry_budget(exporters: list[Exporter], fast_backoff: None) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("down", request=request)

    exporter = _exporter(handler, max_retry_seconds=0.1)
    exporters.append(exporter)
    exporter.submit("run", _run(1))
    assert exporter.flush(5)
    stats = exporter.stats()
    assert stats.failed == 1 and stats.retries > 0


def test_overflow_is_counted_and_logged_at_most_once_a_minute(
    exporters: list[Exporter], caplog: pytest.LogCaptureFixture
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        time.sleep(0.2)
        raise httpx.ConnectError("down", request=request)

    exporter = _exporter(handler, max_queue_size=5, flush_interval=10, max_batch_items=1000)
    exporters.append(exporter)
    with caplog.at_level(logging.WARNING, logger="sightline.sdk"):
        for i in range(20):
            exporter.submit("run", _run(i))  # never raises
    assert exporter.stats().dropped == 15
    assert exporter.stats().queued == 5
    assert len([r for r in caplog.records if "queue is full" in r.message]) == 1


def test_flush_honours_its_deadline_when_the_server_is_down(exporters: list[Exporter]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("down", request=request)

    # Retrying for ten minutes: a flush that waited for the outcome would come back True, much later.
    exporter = _exporter(handler, max_retry_seconds=600)
    exporters.append(exporter)
    exporter.submit("run", _run(1))
    assert exporter.flush(0.3) is False
    assert exporter.stats().failed == 0


def test_one_bad_item_costs_only_itself(cap: Capture, exporters: list[Exporter]) -> None:
    cyclic: dict[str, Any] = {"id": "run-bad", "status": "ok"}
    cyclic["metadata"] = cyclic  # no JSON for this one

    def as_is(dest: Destination, kind: str, payload: Any) -> tuple[str, Any]:
        return "ingest", {"type": kind, "body": payload}

    exporter = Exporter(Destination(**SETTINGS), as_is, httpx.MockTransport(cap.handler))
    exporters.append(exporter)
    for run in (_run(0), cyclic, _run(1), {"id": "run-\ud800", "status": "ok"}):
        exporter.submit("run", run)
    with pytest.raises(ValueError, match="Circular reference"):  # under pytest the bug surfaces
        exporter.flush(5)
    assert [b["id"] for b in cap.of("run")] == ["run-0", "run-1", "run-?"]
    stats = exporter.stats()
    assert (stats.sent, stats.failed, stats.internal_errors) == (3, 1, 1)


def test_a_bug_while_sending_is_counted_and_the_exporter_goes_on(
    cap: Capture, exporters: list[Exporter], monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = _exporter(cap.handler)
    exporters.append(exporter)
    monkeypatch.setattr(exporter._sender, "ingest", lambda dest, items, body=None: 1 / 0)
    for i in range(3):
        exporter.submit("run", _run(i))
    with pytest.raises(ZeroDivisionError):
        exporter.flush(5)
    stats = exporter.stats()
    assert (stats.failed, stats.queued, stats.internal_errors) == (3, 0, 1)
    monkeypatch.undo()
    exporter.submit("run", _run(3))
    assert exporter.flush(5)
    assert [b["id"] for b in cap.of("run")] == ["run-3"]


def test_nothing_is_lost_under_a_burst(cap: Capture, exporters: list[Exporter]) -> None:
    exporter = _exporter(cap.handler, max_batch_items=50, max_queue_size=100_000, flush_interval=0.05)
    exporters.append(exporter)
    threads, each = 8, 1_000

    def burst(t: int) -> None:
        for i in range(each):
            exporter.submit("run", {"id": f"run-{t}-{i}", "status": "ok"})

    workers = [threading.Thread(target=burst, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert exporter.flush(30)
    ids = [b["id"] for b in cap.of("run")]
    assert len(ids) == threads * each
    assert set(ids) == {f"run-{t}-{i}" for t in range(threads) for i in range(each)}
    assert all(len(_body(r)["batch"]) <= 50 for r in cap.requests)
    # Each thread's records arrive in the order it made them.
    for t in range(threads):
        assert [i for i in ids if i.startswith(f"run-{t}-")] == [f"run-{t}-{i}" for i in range(each)]
    stats = exporter.stats()
    assert (stats.sent, stats.dropped, stats.failed, stats.queued) == (threads * each, 0, 0, 0)


def test_feedback_goes_after_what_was_recorded_before_it(cap: Capture, exporters: list[Exporter]) -> None:
    exporter = _exporter(cap.handler)
    exporters.append(exporter)
    exporter.submit("run", _run(1))
    exporter.submit("feedback_key", {"feedbackKey": "k", "thumbs": "up"})
    exporter.submit("run", _run(2))
    assert exporter.flush(5)
    assert [r.url.path for r in cap.requests] == ["/api/ingest", "/api/feedback", "/api/ingest"]


def test_clients_with_the_same_settings_share_one_exporter(capture: Capture) -> None:
    first = _worker.configure(config().resolved(), encode)
    assert _worker.configure(config().resolved(), encode) is first
    assert _worker.configure(config(flush_interval=2).resolved(), encode) is not first
    assert _worker.configure(config(api_key="sl_other_key").resolved(), encode) is not first


def test_two_clients_with_different_settings_do_not_merge(
    fake_openai: FakeOpenAI, capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    quick = sightline.Client(
        api_key="k", base_url=fake_openai.base_url, sightline=config(api_key="sl_quick", flush_interval=0.05)
    )
    # Half a minute between sends and a queue of two: merged settings would send it at once or keep all.
    patient = sightline.Client(
        api_key="k",
        base_url=fake_openai.base_url,
        sightline=config(api_key="sl_patient", flush_interval=30, max_queue_size=2),
    )
    for _ in range(3):
        patient.chat.completions.create(model="patient", messages=[USER])
    quick.chat.completions.create(model="quick", messages=[USER])
    deadline = time.monotonic() + 10
    while not capture.items and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [g["model"]["id"] for g in capture.of("generation")] == ["quick"]
    assert [r.headers["authorization"] for r in capture.requests] == ["Bearer sl_quick"]
    assert sightline.stats().dropped == 1  # the patient client's third call, not the quick one's

    assert sightline.flush(5)
    models = [g["model"]["id"] for g in capture.of("generation")]
    assert sorted(models) == ["patient", "patient", "quick"]
    assert {r.headers["authorization"] for r in capture.requests} == {"Bearer sl_quick", "Bearer sl_patient"}


_EXIT_SCRIPT = """
import sightline
from tests.fake_openai import FakeOpenAI
fake = FakeOpenAI()
# A server that never answers, and ten minutes of retries: only the exit deadline ends the wait.
for key in ("sl_a", "sl_b"):
    config = sightline.SightlineConfig(
        api_key=key, server_url="http://127.0.0.1:9", exit_timeout=0.5, max_retry_seconds=600
    )
    client = sightline.Client(api_key="k", base_url=fake.base_url, sightline=config)
    for _ in range(3):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
fake.close()
print("calls done", flush=True)
"""


def test_exit_with_a_dead_server_waits_only_the_exit_deadline() -> None:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    env.pop("PYTEST_CURRENT_TEST", None)
    # Without the deadline the exit would wait out the retries (600 s) and this would time out.
    result = subprocess.run(
        [sys.executable, "-c", _EXIT_SCRIPT], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "calls done" in result.stdout
    assert "6 records were not delivered before exit" in result.stderr


_FORK_SCRIPT = """
import json, os, sys, httpx, sightline
from sightline.sdk import _worker
sent = []
def handler(request):
    batch = json.loads(request.content)["batch"]
    sent.extend(item["body"]["id"] for item in batch)
    return httpx.Response(200, json={"results": [{"index": i, "status": 201} for i in range(len(batch))]})
_worker.reset(transport=httpx.MockTransport(handler))
config = sightline.SightlineConfig(api_key="sl_k", server_url="http://x", flush_interval=60)
pipeline = sightline.Pipeline("p", sightline=config)
pipeline.start(run_id="parent-before-fork")
sightline.flush(5)
pipeline.start(run_id="parent-queued-at-fork")  # the parent's to send, not the child's
pid = os.fork()
if pid == 0:
    sent.clear()
    pipeline.start(run_id="child")
    ok = sightline.flush(5)
    os._exit(0 if ok and sent == ["child"] and sightline.stats().sent == 1 else 1)
pipeline.start(run_id="parent-after-fork")
sightline.flush(5)
_, status = os.waitpid(pid, 0)
print(json.dumps({"child": os.waitstatus_to_exitcode(status), "parent": sent}))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_has_its_own_exporter() -> None:
    env = {**os.environ}
    env.pop("PYTEST_CURRENT_TEST", None)
    result = subprocess.run(
        [sys.executable, "-c", _FORK_SCRIPT], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report == {
        "child": 0,
        "parent": ["parent-before-fork", "parent-queued-at-fork", "parent-after-fork"],
    }


class _Recorded(http.server.BaseHTTPRequestHandler):
    """A real HTTP server's view of each request: what an ingest endpoint (or a proxy) receives."""

    seen: list[tuple[str, str, dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        answer = json.dumps({"results": [{"index": 0, "status": 201}]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    _Recorded.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorded)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _library_post(url: str, body: bytes, gzipped: bool, **client: Any) -> None:
    """What httpx.Client would send: the path the sender steps under."""
    headers = {"Authorization": "Bearer sl_k", "Content-Type": "application/json"}
    headers["User-Agent"] = f"sightline-python/{sightline.__version__}"
    if gzipped:
        headers["Content-Encoding"] = "gzip"
        body = gzip.compress(body)
    with httpx.Client(**client) as http:
        http.post(url + "/api/ingest", content=body, headers=headers)


_SAME = ("authorization", "content-type", "content-encoding", "user-agent", "host")


@pytest.mark.parametrize("compress", [False, True])
def test_the_sender_posts_what_httpx_client_would(http_server: str, compress: bool) -> None:
    sender = _sender.Sender(_sender.Counters(), lambda seconds: True)
    dest = Destination(server_url=http_server, api_key="sl_k", compress=compress)
    items = [{"type": "run", "body": {"id": "run-1", "status": "ok", "metadata": {"pad": "é" * 2_000}}}]
    sender.ingest(dest, items)
    sender.close()
    _library_post(http_server, _sender.stdlib_dumps({"batch": items}), compress)
    (ours, theirs) = _Recorded.seen
    assert ours[:2] == theirs[:2] == ("POST", "/api/ingest")
    assert {k: ours[2].get(k) for k in _SAME} == {k: theirs[2].get(k) for k in _SAME}
    decode = gzip.decompress if compress else bytes
    assert json.loads(decode(ours[3])) == json.loads(decode(theirs[3])) == {"batch": items}


def test_the_sender_goes_through_the_proxy_the_environment_names(
    http_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", http_server)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    sender = _sender.Sender(_sender.Counters(), lambda seconds: True)
    sender.ingest(
        Destination(server_url="http://sightline.test", api_key="sl_k"), [{"type": "run", "body": {}}]
    )
    sender.close()
    _library_post("http://sightline.test", b'{"batch":[{"type":"run","body":{}}]}', True)
    (ours, theirs) = _Recorded.seen
    assert ours[1] == theirs[1] == "http://sightline.test/api/ingest"  # a proxy gets the absolute URL
    assert ours[2]["host"] == theirs[2]["host"] == "sightline.test"


@pytest.mark.parametrize(
    "value",
    [
        {"text": "plain ascii", "n": 1, "x": 1.5, "ok": True, "none": None, "list": [1, "two", [3.0]]},
        {"unicode": "日本語 ⚽ é", "emoji": "🙂", "escapes": 'quote " backslash \\ newline \n tab \t \x00'},
        {"big": 2**70, "negative": -(2**65)},  # past 64 bits: orjson refuses, the standard library writes
        {"broken": "half \ud800 a character"},  # a lone surrogate: ? in both
        {1: "int key", False: "bool key", None: "none key", 2.5: "float key"},
        {"when": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC), "id": uuid.UUID(int=7)},
        {"tuple": (1, 2), "nested": {"a": {"b": {"c": [{}]}}}, "small": 1e-7, "large": 1e300},
    ],
)
def test_json_is_what_the_standard_library_writes(value: dict[Any, Any]) -> None:
    assert json.loads(_sender.dumps(value)) == json.loads(_sender.stdlib_dumps(value))
    assert json.loads(_sender.dumps_batch([value])) == {"batch": [json.loads(_sender.stdlib_dumps(value))]}
