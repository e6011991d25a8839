"""The background exporter: bounded queue, batching, gzip, retries, flush deadlines, fork."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sightline.sdk import _sender
from sightline.sdk._config import Destination
from sightline.sdk._encode import encode
from sightline.sdk._worker import Exporter, _Knobs
from tests.sdk.conftest import Capture

DEST = Destination(server_url="http://sightline.test", api_key="sl_k", max_batch_items=10)


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sender, "_BACKOFF_BASE", 0.001)
    monkeypatch.setattr(_sender, "_BACKOFF_CAP", 0.01)


def _exporter(handler: Any, **knobs: Any) -> Exporter:
    values = {"max_queue": 1000, "interval": 0.05, "exit_timeout": 1.0, "wake_at": 10, **knobs}
    return Exporter(_Knobs(**values), encode, httpx.MockTransport(handler))


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
        exporter.submit(DEST, "run", _run(i))
    assert exporter.flush(5)
    sizes = [
        len(
            json.loads(
                r.content if "content-encoding" not in r.headers else __import__("gzip").decompress(r.content)
            )["batch"]
        )
        for r in cap.requests
    ]
    assert sizes == [10, 10, 5]
    assert [b["id"] for b in cap.of("run")] == [f"run-{i}" for i in range(25)]
    assert exporter.stats().sent == 25


def test_batches_by_bytes_and_compresses(cap: Capture, exporters: list[Exporter]) -> None:
    exporter = _exporter(cap.handler)
    exporters.append(exporter)
    dest = Destination(server_url="http://sightline.test", api_key="sl_k", max_batch_bytes=5_000)
    for i in range(4):
        exporter.submit(dest, "run", _run(i, size=2_000))
    assert exporter.flush(5)
    assert len(cap.requests) == 2
    assert all(r.headers["content-encoding"] == "gzip" for r in cap.requests)
    assert len(cap.of("run")) == 4


def test_sends_within_the_interval_without_a_flush(cap: Capture, exporters: list[Exporter]) -> None:
    exporter = _exporter(cap.handler, interval=0.05)
    exporters.append(exporter)
    exporter.submit(DEST, "run", _run(1))
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
    exporter.submit(DEST, "run", _run(1))
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
    exporter.submit(DEST, "run", _run(1))
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
    exporter.submit(DEST, "run", _run(1))
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
        exporter.submit(DEST, "run", _run(i))
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
        exporter.submit(DEST, "run", _run(i))
    assert exporter.flush(5)
    assert exporter.stats().sent == 5
    assert sizes[0] == 5


def test_gives_up_after_the_retry_budget(exporters: list[Exporter], fast_backoff: None) -> None:
    dest = Destination(server_url="http://sightline.test", api_key="k", max_retry_seconds=0.1)

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("down", request=request)

    exporter = _exporter(handler)
    exporters.append(exporter)
    exporter.submit(dest, "run", _run(1))
    assert exporter.flush(5)
    stats = exporter.stats()
    assert stats.failed == 1 and stats.retries > 0


def test_overflow_is_counted_and_logged_at_most_once_a_minute(
    exporters: list[Exporter], caplog: pytest.LogCaptureFixture
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        time.sleep(0.2)
        raise httpx.ConnectError("down", request=request)

    exporter = _exporter(handler, max_queue=5, interval=10, wake_at=1000)
    exporters.append(exporter)
    with caplog.at_level(logging.WARNING, logger="sightline.sdk"):
        for i in range(20):
            exporter.submit(DEST, "run", _run(i))  # never raises
    assert exporter.stats().dropped == 15
    assert exporter.stats().queued == 5
    assert len([r for r in caplog.records if "queue is full" in r.message]) == 1


def test_flush_honours_its_deadline_when_the_server_is_down(exporters: list[Exporter]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("down", request=request)

    exporter = _exporter(handler)
    exporters.append(exporter)
    exporter.submit(DEST, "run", _run(1))
    started = time.monotonic()
    assert exporter.flush(0.3) is False
    assert time.monotonic() - started < 1


_EXIT_SCRIPT = """
import time, sightline
from tests.fake_openai import FakeOpenAI
fake = FakeOpenAI()
config = sightline.SightlineConfig(api_key="sl_k", server_url="http://127.0.0.1:9", exit_timeout={timeout})
client = sightline.Client(api_key="k", base_url=fake.base_url, sightline=config)
for _ in range(3):
    client.chat.completions.create(model="m", messages=[{{"role": "user", "content": "hi"}}])
fake.close()
print("calls done", flush=True)
"""


def test_exit_with_a_dead_server_waits_only_the_exit_deadline() -> None:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    env.pop("PYTEST_CURRENT_TEST", None)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", _EXIT_SCRIPT.format(timeout=0.5)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "calls done" in result.stdout
    assert "were not delivered before exit" in result.stderr
    assert time.monotonic() - started < 15


_FORK_SCRIPT = """
import json, os, sys, httpx, sightline
from sightline.sdk import _worker
sent = []
def handler(request):
    batch = json.loads(request.content)["batch"]
    sent.extend(item["body"]["id"] for item in batch)
    return httpx.Response(200, json={"results": [{"index": i, "status": 201} for i in range(len(batch))]})
_worker.reset(transport=httpx.MockTransport(handler))
pipeline = sightline.Pipeline("p", sightline=sightline.SightlineConfig(api_key="sl_k", server_url="http://x"))
pipeline.start(run_id="parent-before-fork")
sightline.flush(5)
pid = os.fork()
if pid == 0:
    sent.clear()
    pipeline.start(run_id="child")
    ok = sightline.flush(5)
    os._exit(0 if ok and sent == ["child"] else 1)
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
    assert report == {"child": 0, "parent": ["parent-before-fork", "parent-after-fork"]}
