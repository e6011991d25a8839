"""Security of a default install: the generated secret, logs without bodies, feedback keys signed
with a key derived from the server's secret. Through real ``sightline serve`` processes, the real
CLI, uvicorn and the real ``openai`` client."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import uvicorn
from fastapi import Request
from pydantic import BaseModel
from sqlalchemy import Connection, select

import sightline
from sightline.feedback_key import hash_api_key, make_feedback_key
from sightline.sdk import _signing, _worker
from sightline.server.app import create_app
from sightline.settings import SECRET_FILE, Settings
from sightline.store import tables as t
from tests.conftest import Api, free_port, sightline_command, start_server, stop_server
from tests.dashboard.test_pages import csrf_of
from tests.fake_openai import FakeOpenAI

SECRET_BODY = "sk-live-THIS-MUST-NOT-BE-LOGGED-0123456789"


# --- item 1: no public secret; a generated one, shared and kept ---------------------------------


def test_the_old_public_constant_is_gone_from_the_source() -> None:
    src = Path(__file__).resolve().parents[2] / "src" / "sightline"
    offenders = [p for p in src.rglob("*.py") if "sightline-development-secret" in p.read_text()]
    assert not offenders


def test_a_secret_is_generated_once_with_mode_0600_and_reused(tmp_path: Path) -> None:
    first = Settings(home=tmp_path)
    assert first.secret_generated
    path = tmp_path / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first.secret_key) >= 32
    assert Settings(home=tmp_path).secret_key == first.secret_key
    assert sorted(p.name for p in tmp_path.iterdir()) == [SECRET_FILE]  # no candidate left behind
    assert first.secret_key not in repr(first)
    given = Settings(home=tmp_path / "other", secret_key="g" * 40)
    assert not given.secret_generated and not (tmp_path / "other").exists()


def test_processes_starting_together_agree_on_one_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SIGHTLINE_SECRET_KEY"}
    env["SIGHTLINE_HOME"] = str(tmp_path / "home")
    code = "from sightline.settings import Settings; print(Settings().secret_key)"
    processes = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    secrets = {p.communicate(timeout=60)[0].strip() for p in processes}
    assert len(secrets) == 1 and len(secrets.pop()) >= 32
    assert [p.name for p in (tmp_path / "home").iterdir()] == [SECRET_FILE]


@pytest.mark.parametrize("secret", ["", "short", "x" * 31])
def test_production_refuses_a_missing_or_short_secret(secret: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SIGHTLINE_SECRET_KEY"):
        Settings(home=tmp_path, environment="production", secret_key=secret)
    assert not (tmp_path / SECRET_FILE).exists()
    assert Settings(environment="production", secret_key="x" * 32).secret_key == "x" * 32


def test_a_short_secret_refuses_to_start_in_production_through_the_cli(tmp_path: Path) -> None:
    env = {**os.environ, "SIGHTLINE_HOME": str(tmp_path), "SIGHTLINE_ENVIRONMENT": "production"}
    env["SIGHTLINE_SECRET_KEY"] = "too-short"
    done = subprocess.run(
        [*sightline_command(), "migrate"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "at least 32 characters" in done.stderr and "too-short" not in done.stderr


def _home_env(home: Path) -> dict[str, str]:
    return {"SIGHTLINE_HOME": str(home), "SIGHTLINE_SECRET_KEY": "", "SIGHTLINE_ENVIRONMENT": "development"}


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [*sightline_command(), *args],
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def _log_in(url: str, username: str, password: str) -> str:
    """The session cookie of a fresh login over real HTTP."""
    with httpx.Client(base_url=url) as http:
        form = http.get("/login")
        r = http.post("/login", data={"username": username, "password": password, "csrf": csrf_of(form.text)})
        assert r.status_code == 303, r.text
        return str(http.cookies["sightline_session"])


def test_a_restart_keeps_sessions_and_stored_provider_keys(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = _home_env(home)
    database_url = f"sqlite:///{home / 'sightline.db'}"
    env["SIGHTLINE_DATABASE_URL"] = database_url
    upstream = FakeOpenAI()
    try:
        key = _cli(env, "token", "create", "--project", "demo").splitlines()[-1]
        _cli(env, "create-admin", "--username", "root", "--password", "root-password-1")
        _cli(
            env,
            *("provider", "add", "--project", "demo", "--name", "fake", "--base-url", upstream.base_url),
            *("--api-key", "-", "--default"),
            stdin="sk-stored-provider-key\n",
        )
        process, url = start_server(database_url, tmp_path / "first.log", env=env)
        try:
            cookie = _log_in(url, "root", "root-password-1")
        finally:
            stop_server(process)

        process, url = start_server(database_url, tmp_path / "second.log", env=env)
        try:
            r = httpx.get(f"{url}/admin/users", cookies={"sightline_session": cookie})
            assert r.status_code == 200 and "root" in r.text
            client = openai.OpenAI(api_key=key, base_url=f"{url}/v1", max_retries=0)
            reply = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
            assert reply.choices[0].message.content
            assert upstream.requests()[-1]["headers"]["authorization"] == "Bearer sk-stored-provider-key"
        finally:
            stop_server(process)
        secret = (home / SECRET_FILE).read_text().strip()
        assert stat.S_IMODE((home / SECRET_FILE).stat().st_mode) == 0o600
        for log in ("first.log", "second.log"):
            assert secret not in (tmp_path / log).read_text()
    finally:
        upstream.close()


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
def test_serve_warns_once_on_a_public_address_with_a_generated_secret(host: str, tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'sightline.db'}"
    log = tmp_path / "serve.log"
    process, _ = start_server(database_url, log, env=_home_env(tmp_path), args=("--host", host))
    stop_server(process)
    warnings = [
        line for line in log.read_text().splitlines() if "WARNING" in line and "SIGHTLINE_SECRET_KEY" in line
    ]
    assert len(warnings) == (1 if host == "0.0.0.0" else 0), log.read_text()


# --- item 6: no body in the logs, whatever fails --------------------------------------------------


class _Strict(BaseModel):
    count: int


@pytest.fixture
def failing_server(tmp_path: Path) -> Iterator[str]:
    """A real uvicorn serving the app, plus two routes that fail inside with the body in hand."""
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'sightline.db'}", secret_key="k" * 40))

    async def parses(request: Request) -> dict[str, str]:
        body = await request.json()
        return {"n": str(int(body["value"]))}  # ValueError quoting the value

    async def validates(request: Request) -> dict[str, str]:
        body = await request.json()
        try:
            _Strict.model_validate({"count": body["value"]})
        except ValueError as exc:
            raise RuntimeError("could not build the record") from exc  # the cause: pydantic quoting the input
        return {}

    app.add_api_route("/test/parses", parses, methods=["POST"])
    app.add_api_route("/test/validates", validates, methods=["POST"])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_config=None, log_level="debug", lifespan="on"))
    thread = threading.Thread(target=asyncio.run, args=(server.serve(),), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        if server.started:
            break
        threading.Event().wait(0.05)
    yield url
    server.should_exit = True
    thread.join(15)


def test_an_internal_error_logs_no_body_at_any_level(
    failing_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for path in ("/test/parses", "/test/validates"):
        r = httpx.post(f"{failing_server}{path}", json={"value": SECRET_BODY, "prompt": SECRET_BODY})
        assert r.status_code == 500
        assert r.json() == {
            "error": {
                "type": "internal_error",
                "message": "Sightline hit an internal error; it has been logged",
            }
        }
    logged = "\n".join(
        record.getMessage()
        + (logging.Formatter().formatException(record.exc_info) if record.exc_info else "")
        for record in caplog.records
    )
    assert "unexpected error on POST /test/parses" in logged
    assert "ValueError" in logged and "RuntimeError" in logged and "ValidationError" in logged
    assert SECRET_BODY not in logged
    assert "input_value" not in logged


# --- item 7: feedback keys signed with a key derived from the server's secret ---------------------


def _old_layout_key(key_hash: str, generation_id: str) -> str:
    """A feedback key as anyone holding the database could make it before: signed with the hash."""
    payload = uuid.UUID(generation_id).bytes + bytes.fromhex(key_hash[:16])
    mac = hmac.new(bytes.fromhex(key_hash), payload, hashlib.sha256).digest()[:16]
    return "slfk_" + base64.urlsafe_b64encode(payload + mac).rstrip(b"=").decode()


async def test_a_reader_of_the_database_cannot_forge_feedback_keys(api: Api) -> None:
    generation_id = str(uuid.uuid4())
    r = await api.http.post("/api/generations", json={"id": generation_id, "model": {"id": "gpt-4o"}})
    assert r.status_code == 201
    with api.db.read() as conn:
        (key_hash,) = conn.execute(select(t.api_keys.c.key_hash)).one()
    anonymous = httpx.AsyncClient(transport=api.http._transport, base_url="http://sightline.test")

    for forged in (
        _old_layout_key(key_hash, generation_id),
        make_feedback_key(bytes.fromhex(key_hash), key_hash, generation_id),
    ):
        r = await anonymous.post("/api/feedback", json={"feedbackKey": forged, "thumbs": "down"})
        assert 400 <= r.status_code < 500 and set(r.json()["error"]) >= {"type", "message"}
        assert r.json()["error"].get("field") == "feedbackKey" or r.status_code == 401
    got = (await api.http.get(f"/api/generations/{generation_id}")).json()
    assert not got.get("feedback")


async def test_the_signing_key_endpoint_needs_the_api_key_and_signs_what_the_server_accepts(api: Api) -> None:
    anonymous = httpx.AsyncClient(transport=api.http._transport, base_url="http://sightline.test")
    r = await anonymous.get("/api/feedback/signing-key")
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"

    r = await api.http.get("/api/feedback/signing-key")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    own = base64.urlsafe_b64decode(r.json()["signingKey"])
    generation_id = "generation-123"  # ids need not be UUIDs
    key = make_feedback_key(own, hash_api_key(api.key), generation_id)
    r = await anonymous.post("/api/feedback", json={"feedbackKey": key, "thumbs": "up"})
    assert r.status_code in (201, 202), r.text
    assert r.json()["generationId"] == generation_id
    other = api.new_key("other-project")
    r = await api.http.get("/api/feedback/signing-key", headers=api.headers(other))
    assert base64.urlsafe_b64decode(r.json()["signingKey"]) != own


def test_sdk_and_gateway_feedback_keys_verify_on_a_real_server(tmp_path: Path) -> None:
    upstream = FakeOpenAI()
    env = {**_home_env(tmp_path), "SIGHTLINE_UPSTREAM_URL": upstream.base_url}
    database_url = f"sqlite:///{tmp_path / 'sightline.db'}"
    env["SIGHTLINE_DATABASE_URL"] = database_url
    key = _cli(env, "token", "create", "--project", "demo").splitlines()[-1]
    process, url = start_server(database_url, tmp_path / "serve.log", env=env)
    try:
        _worker.reset()
        _signing.reset()
        config = sightline.SightlineConfig(api_key=key, server_url=url)
        client = sightline.Client(api_key="sk-upstream", base_url=upstream.base_url, sightline=config)
        response = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        sdk_key = str(response.model_extra["sightline_feedback_key"])  # type: ignore[index]
        assert sightline.flush(20)

        gateway = openai.OpenAI(api_key=key, base_url=f"{url}/v1", max_retries=0)
        raw = gateway.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
        )
        gateway_key = raw.headers["x-sightline-feedback-key"]

        for feedback_key in (sdk_key, gateway_key):
            r = httpx.post(f"{url}/api/feedback", json={"feedbackKey": feedback_key, "thumbs": "up"})
            assert r.status_code in (201, 202), r.text
    finally:
        _worker.reset(timeout=5)
        _signing.reset()
        stop_server(process)
        upstream.close()


class _DuplicateProject:
    """A write the database refuses, quoting the row (PostgreSQL: "Failing row contains ...")."""

    size = 1

    def apply(self, conn: Connection) -> None:
        conn.execute(t.projects.insert().values(id=1, name=SECRET_BODY, created_us=1))


def test_a_refused_write_is_logged_without_the_values(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from sightline.store import Database

    caplog.set_level(logging.DEBUG)
    db = Database(database_url)
    db.start()
    try:
        db.writer.write_sync(_DuplicateProject(), timeout=30)
        with pytest.raises(Exception) as refused:
            db.writer.write_sync(_DuplicateProject(), timeout=30)
    finally:
        db.close()
    assert SECRET_BODY in str(refused.value) or "hidden" in str(refused.value)  # the driver quoted it
    logged = "\n".join(
        record.getMessage()
        + (logging.Formatter().formatException(record.exc_info) if record.exc_info else "")
        for record in caplog.records
    )
    assert "write failed" in logged and "IntegrityError" in logged
    assert SECRET_BODY not in logged


def test_a_home_sightline_cannot_write_is_a_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "not-a-folder"
    home.write_text("a file where the home folder should be")  # unwritable even for root
    done = subprocess.run(
        [*sightline_command(), "migrate", "--database-url", f"sqlite:///{tmp_path / 'x.db'}"],
        env={**os.environ, **_home_env(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "cannot keep a generated secret key" in done.stderr and "Traceback" not in done.stderr


def test_the_sdk_records_while_its_server_is_down_and_signs_once_it_is_up(tmp_path: Path) -> None:
    """The signing key is fetched in the background: a server that is down costs the caller no
    error, and the key comes by itself when the server does."""
    upstream = FakeOpenAI()
    env = {**_home_env(tmp_path), "SIGHTLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'sightline.db'}"}
    key = _cli(env, "token", "create", "--project", "demo").splitlines()[-1]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process: subprocess.Popen[bytes] | None = None
    try:
        _worker.reset()
        _signing.reset()
        config = sightline.SightlineConfig(api_key=key, server_url=url, max_retry_seconds=60)
        client = sightline.Client(api_key="sk-upstream", base_url=upstream.base_url, sightline=config)
        ask = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        early = client.chat.completions.create(**ask)  # type: ignore[call-overload]
        assert early.choices[0].message.content
        assert early.model_extra["sightline_feedback_key"] == ""

        log = (tmp_path / "serve.log").open("wb")
        process = subprocess.Popen(
            [*sightline_command(), "serve", "--port", str(port)],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        feedback_key = ""
        for _ in range(1200):  # the fetch retries with growing pauses, at most 10 s apart
            feedback_key = str(client.chat.completions.create(**ask).model_extra["sightline_feedback_key"])  # type: ignore[call-overload]
            if feedback_key:
                break
            threading.Event().wait(0.1)
        assert feedback_key
        assert sightline.flush(30)
        r = httpx.post(f"{url}/api/feedback", json={"feedbackKey": feedback_key, "thumbs": "up"})
        assert r.status_code in (201, 202), r.text
    finally:
        _worker.reset(timeout=5)
        _signing.reset()
        if process is not None:
            stop_server(process)
        upstream.close()
