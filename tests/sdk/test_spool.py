"""The spool: what could not be delivered is kept on disk and sent, once, by the next start.

The user's scenario runs as it would for a user: short scripts (real processes, the real openai
client against the fake provider) and a real ``sightline serve`` started after the first script.
The rest drives one exporter against ``httpx.MockTransport`` or a small real HTTP server that
records every item it is sent (the real server keeps one copy of an id, which would hide a
duplicate send).
"""

from __future__ import annotations

import collections
import gzip
import http.server
import json
import logging
import os
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import sightline
from sightline.sdk import _sender, _spool
from sightline.sdk._config import Destination
from sightline.sdk._encode import encode
from sightline.sdk._spool import Spool
from sightline.sdk._worker import Exporter
from tests.conftest import free_port, sightline_command, stop_server
from tests.fake_openai import FakeOpenAI
from tests.sdk.conftest import Capture

KEY = "sl_spool_key_0123456789"


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sender, "_BACKOFF_BASE", 0.001)
    monkeypatch.setattr(_sender, "_BACKOFF_CAP", 0.01)


@pytest.fixture
def exporters() -> Iterator[list[Exporter]]:
    made: list[Exporter] = []
    yield made
    for exporter in made:
        exporter.close(1)


def _dest(folder: Path, **settings: Any) -> Destination:
    values: dict[str, Any] = {
        "server_url": "http://sightline.test",
        "api_key": KEY,
        "spool_dir": str(folder),
        "flush_interval": 0.05,
        "max_retry_seconds": 0.2,
        "exit_timeout": 1.0,
        **settings,
    }
    return Destination(**values)


def _exporter(made: list[Exporter], folder: Path, handler: Any, **settings: Any) -> Exporter:
    exporter = Exporter(_dest(folder, **settings), encode, httpx.MockTransport(handler))
    made.append(exporter)
    return exporter


def _down(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("down", request=request)


def _gen(i: int | str, pad: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = {"id": f"gen-{i}", "model": {"id": "m"}}
    if pad:
        body["metadata"] = {"pad": os.urandom(pad).hex()}  # random: gzip cannot shrink it
    return body


def _item(i: int | str, pad: int = 0) -> dict[str, Any]:
    return {"type": "generation", "body": _gen(i, pad)}


def _files(folder: Path, pattern: str = "*.jsonl.gz") -> list[Path]:
    return sorted(folder.glob(pattern)) if folder.exists() else []


def _spooled_ids(folder: Path) -> list[str]:
    """The ids of the records waiting in the spool, read as any tool would (gzip, JSON lines)."""
    ids = []
    for path in _files(folder):
        header, *lines = gzip.decompress(path.read_bytes()).decode().split("\n")
        assert json.loads(header)["count"] == len(lines)
        ids += [json.loads(line)["body"]["id"] for line in lines]
    return ids


def _wait_for(condition: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# -- the user's scenario: a short script, the server down, then up ---------------------------------

_SCRIPT = """
import json, os, sys, time, sightline
config = sightline.SightlineConfig(
    api_key=os.environ["KEY"], server_url=os.environ["SERVER"], spool_dir=os.environ["SPOOL"],
    exit_timeout=float(os.environ.get("EXIT_TIMEOUT", "5")),
)
client = sightline.Client(api_key="sk-upstream", base_url=os.environ["UPSTREAM"], sightline=config)
ids = []
for _ in range(int(os.environ["CALLS"])):
    response = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    ids.append(response.model_extra["sightline_generation_id"])
if os.environ.get("FLUSH"):
    sightline.flush(30)
print(json.dumps({"ids": ids, "stats": sightline.stats().as_dict()}), flush=True)
"""


def _script(env: dict[str, str], **values: str | int | float) -> subprocess.Popen[str]:
    full = {**os.environ, **env, **{k: str(v) for k, v in values.items()}}
    full.pop("PYTEST_CURRENT_TEST", None)  # the scripts run as a user's would
    full.pop("SIGHTLINE_SPOOL_DIR", None)
    return subprocess.Popen(
        [sys.executable, "-c", _SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full
    )


def _finish(process: subprocess.Popen[str], timeout: float = 60) -> tuple[dict[str, Any], str]:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1]), err


def _serve(database_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    """``sightline serve`` on a given port (the one the first script was told to use)."""
    env = {**os.environ, "SIGHTLINE_DATABASE_URL": database_url}
    process = subprocess.Popen(
        [*sightline_command(), "serve", "--port", str(port)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"sightline serve did not start: {log.read_text()}")


def _accepted(url: str) -> float:
    """How many generations the server was sent (duplicates included), from its /metrics."""
    wanted = ("sightline_ingest_items_total{", 'type="generation"', 'outcome="accepted"')
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        name, _, value = line.rpartition(" ")
        if all(part in name for part in wanted):
            return float(value)
    return 0.0


def test_a_short_script_with_the_server_down_keeps_its_records_for_the_next_start(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    database_url = f"sqlite:///{tmp_path / 'server.db'}"
    made = subprocess.run(
        [*sightline_command(), "token", "create", "--project", "demo", "--environment", "dev"],
        env={**os.environ, "SIGHTLINE_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    key = made.stdout.strip().splitlines()[-1]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    spool = tmp_path / "spool"
    env = {"KEY": key, "SERVER": url, "SPOOL": str(spool), "UPSTREAM": fake_openai.base_url}

    # 1. The server is down (nothing listens on its port): 20 calls, and the script exits.
    first = _script(env, CALLS=20, EXIT_TIMEOUT=1)
    report, err = _finish(first)
    assert len(set(report["ids"])) == 20
    assert report["stats"]["sent"] == 0
    assert "20 records were not delivered before exit; kept in the spool" in err
    assert sorted(_spooled_ids(spool)) == sorted(report["ids"])
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in _files(spool))
    raw = b"".join(gzip.decompress(path.read_bytes()) for path in _files(spool))
    assert key.encode() not in raw  # the file names its destination by a hash of the key

    # 2. The server is up: the next run sends them, once, and empties the spool.
    server = _serve(database_url, port, tmp_path / "server.log")
    try:
        second, _ = _finish(_script(env, CALLS=1, FLUSH=1))
        assert second["stats"]["resent"] == 20
        assert second["stats"]["sent"] == 1
        http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=10)
        for generation_id in report["ids"] + second["ids"]:
            response = http.get(f"/api/generations/{generation_id}")
            assert response.status_code == 200, response.text
        assert _accepted(url) == 21  # each record was sent once: no duplicate reached the server
        assert os.listdir(spool) == []
    finally:
        stop_server(server)


def test_the_exit_waits_its_deadline_then_spools_at_once(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    env = {
        "KEY": KEY,
        "SERVER": f"http://127.0.0.1:{free_port()}",
        "SPOOL": str(tmp_path / "spool"),
        "UPSTREAM": fake_openai.base_url,
    }
    process = _script(env, CALLS=3, EXIT_TIMEOUT=1)
    assert process.stdout is not None
    line = process.stdout.readline()  # printed once the calls are made: the exit starts now
    started = time.monotonic()
    process.wait(60)
    assert time.monotonic() - started < 30  # the exit deadline (1 s) and a little, not the retries (120 s)
    assert len(json.loads(line)["ids"]) == 3
    assert len(_spooled_ids(tmp_path / "spool")) == 3


# -- several processes, one spool ------------------------------------------------------------


class _Ingest(http.server.BaseHTTPRequestHandler):
    """An ingest endpoint that records the id of every item it is sent, duplicates included."""

    seen: list[str] = []
    lock = threading.Lock()

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers["content-length"]))
        if self.headers.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
        batch = json.loads(raw)["batch"]
        time.sleep(0.02)  # slow enough for the two processes to overlap
        with self.lock:
            self.seen.extend(str(item["body"].get("id")) for item in batch)
        answer = json.dumps({"results": [{"index": i, "status": 201} for i in range(len(batch))]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def ingest_server() -> Iterator[str]:
    _Ingest.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ingest)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_two_processes_starting_at_once_send_each_spooled_record_once(
    tmp_path: Path, ingest_server: str, fake_openai: FakeOpenAI
) -> None:
    folder = tmp_path / "spool"
    spool = Spool(_dest(folder, server_url=ingest_server))
    spooled = [f"gen-{f}-{i}" for f in range(12) for i in range(5)]
    for f in range(12):
        assert spool.write([_item(f"{f}-{i}") for i in range(5)]).kept == 5
    env = {"KEY": KEY, "SERVER": ingest_server, "SPOOL": str(folder), "UPSTREAM": fake_openai.base_url}

    both = [_script(env, CALLS=1, FLUSH=1) for _ in range(2)]
    reports = [_finish(process)[0] for process in both]

    counts = collections.Counter(_Ingest.seen)
    assert {record: counts[record] for record in spooled} == dict.fromkeys(spooled, 1)
    assert sum(report["stats"]["resent"] for report in reports) == 60
    assert os.listdir(folder) == []


def test_a_claim_left_by_a_dead_process_is_taken_back(tmp_path: Path, exporters: list[Exporter]) -> None:
    folder = tmp_path / "spool"
    spool = Spool(_dest(folder))
    spool.write([_item("orphan")])
    spool.write([_item("busy")])
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, timeout=60
    )
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        orphan, busy = _files(folder)
        orphan.rename(f"{orphan}.sending.{dead.stdout.strip()}.0badc0de")
        busy.rename(f"{busy}.sending.{live.pid}.0badc0de")  # another process is sending it right now
        cap = Capture()
        exporter = _exporter(exporters, folder, cap.handler)
        exporter.submit("generation", _gen("new"))
        assert exporter.flush(10)
        assert sorted(g["id"] for g in cap.of("generation")) == ["gen-new", "gen-orphan"]
        assert [p.name.split(".sending.")[1] for p in _files(folder, "*.sending.*")] == [
            f"{live.pid}.0badc0de"
        ]
    finally:
        live.kill()
        live.wait()


# -- what is kept, and what is not -----------------------------------------------------------


def test_records_given_up_on_while_running_are_spooled_and_sent_once_the_server_is_back(
    tmp_path: Path, exporters: list[Exporter], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_spool, "_RESEND_PAUSE", 1.0)
    cap = Capture()
    up = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        if not up.is_set():
            raise httpx.ConnectError("down", request=request)
        return cap.handler(request)

    folder = tmp_path / "spool"
    exporter = _exporter(exporters, folder, handler)
    for i in range(3):
        exporter.submit("generation", _gen(i))
    assert exporter.flush(10)
    stats = exporter.stats()
    assert (stats.spooled, stats.failed, stats.sent) == (3, 0, 0)
    assert sorted(_spooled_ids(folder)) == ["gen-0", "gen-1", "gen-2"]

    up.set()
    _wait_for(lambda: exporter.stats().resent == 3)
    assert sorted(g["id"] for g in cap.of("generation")) == ["gen-0", "gen-1", "gen-2"]
    _wait_for(lambda: not _files(folder))


def test_records_the_server_refused_are_not_spooled(tmp_path: Path, exporters: list[Exporter]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        batch = json.loads(request.content)["batch"]
        status = {"gen-ok": 201, "gen-invalid": 422, "gen-unlucky": 503}
        results = [{"index": i, "status": status[item["body"]["id"]]} for i, item in enumerate(batch)]
        return httpx.Response(200, json={"results": results})

    folder = tmp_path / "spool"
    exporter = _exporter(exporters, folder, handler)
    for name in ("ok", "invalid", "unlucky"):
        exporter.submit("generation", _gen(name))
    assert exporter.flush(10)
    stats = exporter.stats()
    assert (stats.sent, stats.rejected, stats.spooled) == (1, 1, 1)
    assert _spooled_ids(folder) == ["gen-unlucky"]

    # A whole batch refused (400): nothing is kept.
    refusing = _exporter(exporters, tmp_path / "other", lambda request: httpx.Response(400, json={}))
    refusing.submit("generation", _gen("refused"))
    assert refusing.flush(10)
    assert refusing.stats().rejected == 1
    assert refusing.stats().spooled == 0
    assert _files(tmp_path / "other") == []


def test_close_spools_what_a_thread_stuck_in_a_request_holds(
    tmp_path: Path, exporters: list[Exporter]
) -> None:
    release = threading.Event()

    def hangs(request: httpx.Request) -> httpx.Response:
        release.wait(10)
        raise httpx.ConnectError("down", request=request)

    folder = tmp_path / "spool"
    exporter = _exporter(exporters, folder, hangs, max_retry_seconds=600)
    exporter.submit("generation", _gen("in-flight"))
    _wait_for(lambda: exporter._delivering)
    exporter.submit("generation", _gen("queued"))
    assert exporter.close(0.2, grace=0.2) is False
    assert sorted(_spooled_ids(folder)) == ["gen-in-flight", "gen-queued"]
    release.set()  # the request ends: what it held was spooled already, and is not again
    exporter._thread.join(5)  # type: ignore[union-attr]
    assert sorted(_spooled_ids(folder)) == ["gen-in-flight", "gen-queued"]
    assert exporter.stats().spooled == 2


def test_the_spool_is_bounded_and_drops_the_oldest_first(
    tmp_path: Path, exporters: list[Exporter], caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "spool"
    # Each file is one record of about 4.3 KB: room for two of them, not three.
    exporter = _exporter(exporters, folder, _down, max_retry_seconds=0, spool_max_bytes=10_000)
    with caplog.at_level(logging.WARNING, logger="sightline.sdk"):
        for i in range(5):
            exporter.submit("generation", _gen(i, pad=4_000))
            assert exporter.flush(10)
    assert _spooled_ids(folder) == ["gen-3", "gen-4"]
    assert sum(path.stat().st_size for path in folder.iterdir()) <= 10_000
    stats = exporter.stats()
    assert (stats.spooled, stats.dropped) == (5, 3)
    full = [r.message for r in caplog.records if "is full" in r.message]
    assert len(full) == 1  # once a minute at most
    assert "gen-" not in full[0]  # never a record's content

    # A record bigger than the whole spool is dropped itself, not what is there.
    exporter.submit("generation", _gen("huge", pad=20_000))
    assert exporter.flush(10)
    assert _spooled_ids(folder) == ["gen-3", "gen-4"]
    assert exporter.stats().dropped == 4


def test_a_corrupt_file_is_set_aside_and_the_rest_is_sent(
    tmp_path: Path, exporters: list[Exporter], caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "spool"
    spool = Spool(_dest(folder))
    spool.write([_item("broken")])
    spool.write([_item("truncated-1"), _item("truncated-2")])
    spool.write([_item("fine")])
    broken, truncated, _ = _files(folder)
    broken.write_bytes(b"not gzip at all")
    truncated.write_bytes(truncated.read_bytes()[:-12])
    cap = Capture()
    exporter = _exporter(exporters, folder, cap.handler)
    with caplog.at_level(logging.WARNING, logger="sightline.sdk"):
        exporter.submit("generation", _gen("new"))
        assert exporter.flush(10)
    assert sorted(g["id"] for g in cap.of("generation")) == ["gen-fine", "gen-new"]
    assert sorted(p.name for p in folder.iterdir()) == sorted([broken.name + ".bad", truncated.name + ".bad"])
    assert len([r for r in caplog.records if "unreadable spool file" in r.message]) == 1
    assert exporter.stats().internal_errors == 0


def test_another_destinations_spool_is_left_alone(tmp_path: Path, exporters: list[Exporter]) -> None:
    folder = tmp_path / "spool"
    Spool(_dest(folder)).write([_item("mine")])
    Spool(_dest(folder, api_key="sl_another_key")).write([_item("other-key")])
    Spool(_dest(folder, server_url="http://elsewhere.test")).write([_item("other-server")])
    theirs = {path.name: path.read_bytes() for path in _files(folder)}
    cap = Capture()
    exporter = _exporter(exporters, folder, cap.handler)
    exporter.submit("generation", _gen("new"))
    assert exporter.flush(10)
    assert sorted(g["id"] for g in cap.of("generation")) == ["gen-mine", "gen-new"]
    assert sorted(_spooled_ids(folder)) == ["gen-other-key", "gen-other-server"]
    assert all(theirs[path.name] == path.read_bytes() for path in _files(folder))
    assert {r.headers["authorization"] for r in cap.requests} == {f"Bearer {KEY}"}


def test_feedback_given_up_on_is_spooled_and_sent_to_its_endpoint(
    tmp_path: Path, exporters: list[Exporter]
) -> None:
    folder = tmp_path / "spool"
    down = _exporter(exporters, folder, _down)
    down.submit("feedback_key", {"feedbackKey": "fk-1", "rating": 5})
    assert down.flush(10)
    assert down.stats().spooled == 1
    cap = Capture()
    up = _exporter(exporters, folder, cap.handler, flush_interval=0.06)  # another exporter, same destination
    up.submit("generation", _gen("new"))
    assert up.flush(10)
    assert cap.feedback == [{"feedbackKey": "fk-1", "rating": 5}]
    assert _files(folder) == []


# -- without a spool -------------------------------------------------------------------------


def test_without_a_spool_nothing_is_written_and_failures_count_as_before(
    tmp_path: Path, exporters: list[Exporter], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SIGHTLINE_SPOOL_DIR", raising=False)
    config = sightline.SightlineConfig(api_key=KEY, max_retry_seconds=0.1).resolved()
    assert config.spool_dir is None and config.destination().spool_dir is None
    exporter = Exporter(config.destination(), encode, httpx.MockTransport(_down))
    exporters.append(exporter)
    exporter.submit("generation", _gen(1))
    assert exporter.flush(10)
    stats = exporter.stats()
    assert (stats.failed, stats.spooled) == (1, 0)
    assert list(tmp_path.iterdir()) == []


def test_the_spool_folder_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SIGHTLINE_SPOOL_DIR", "spool")
    config = sightline.SightlineConfig(api_key=KEY).resolved()
    assert config.spool_dir == str(tmp_path / "spool")  # absolute: a later chdir does not move it
    assert config.destination().spool_dir == str(tmp_path / "spool")
    given = sightline.SightlineConfig(api_key=KEY, spool_dir=tmp_path / "given").resolved()
    assert given.destination().spool_dir == str(tmp_path / "given")
    with pytest.raises(ValueError, match="spool_max_bytes"):
        sightline.SightlineConfig(spool_max_bytes=0)


def test_files_written_at_once_do_not_collide(tmp_path: Path) -> None:
    spool = Spool(_dest(tmp_path))
    for _ in range(20):
        spool.write([_item(uuid.uuid4().hex)])
    assert len(_files(tmp_path)) == 20
