"""Gateway fixtures: a real ``sightline serve`` in front of a local OpenAI-compatible server.

* ``fake``: the shared fake OpenAI server (``tests/fake_openai.py``) in its own process.
* ``gateway``: one ``sightline serve`` process per module, forwarding to ``fake``; each test makes
  keys of its own projects (``gateway.new_key()``), so tests sharing the process never see each
  other's records or cache entries.
* ``inproc``: the app in this process over httpx's ASGI transport (on SQLite and PostgreSQL),
  forwarding to the in-thread :class:`~tests.gateway.upstream.FakeUpstream`.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from sightline.settings import Settings
from sightline.store import Database
from sightline.store.access.projects import create_key
from tests.conftest import sightline_command, start_server, stop_server
from tests.fake_openai import FakeOpenAI, serve
from tests.gateway.upstream import FakeUpstream

SECRET = "gateway-tests-secret-key"


def unique(prefix: str = "p") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def wait_for(fetch: Any, timeout: float = 10.0) -> Any:
    """Poll ``fetch()`` until it answers something truthy (records land a few ms after the answer)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


@dataclass
class GatewayServer:
    url: str
    database_url: str
    log: Path
    env: dict[str, str]
    process: Any

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def new_key(self, project: str | None = None) -> str:
        """A key of a fresh project (made directly in the server's database)."""
        db = Database(self.database_url)
        try:
            with db.transaction() as conn:
                secret, _ = create_key(conn, project or unique(), "dev")
        finally:
            db.engine.dispose()
        return secret

    def client(self, key: str, **kw: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=key, max_retries=0, **kw)

    def async_client(self, key: str, **kw: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=key, max_retries=0, **kw)

    def generation(self, key: str, generation_id: str) -> dict[str, Any]:
        """A recorded generation, read back through the query API (waits for it to land)."""

        def fetch() -> dict[str, Any] | None:
            r = httpx.get(
                f"{self.url}/api/generations/{generation_id}", headers={"Authorization": f"Bearer {key}"}
            )
            return r.json() if r.status_code == 200 else None

        found = wait_for(fetch)
        assert found, f"generation {generation_id} was not recorded"
        return dict(found)

    def generations(self, key: str, count: int, **params: str) -> list[dict[str, Any]]:
        """The project's generations (newest first), once there are at least ``count``."""

        def fetch() -> list[dict[str, Any]] | None:
            r = httpx.get(
                f"{self.url}/api/generations", params=params, headers={"Authorization": f"Bearer {key}"}
            )
            data = r.json()["data"]
            return data if len(data) >= count else None

        found = wait_for(fetch)
        assert found, f"fewer than {count} generations were recorded"
        return list(found)

    def cli(self, *args: str, stdin: str | None = None) -> Any:
        import subprocess

        return subprocess.run(
            [*sightline_command(), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            input=stdin,
        )


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with serve() as server:
        yield server


def launch(tmp: Path, upstream_url: str, **extra: str) -> GatewayServer:
    database_url = extra.pop("database_url", f"sqlite:///{tmp / 'gateway.db'}")
    env = {
        **os.environ,
        "SIGHTLINE_DATABASE_URL": database_url,
        "SIGHTLINE_UPSTREAM_URL": upstream_url,
        "SIGHTLINE_UPSTREAM_API_KEY": "sk-settings-key",
        "SIGHTLINE_SECRET_KEY": SECRET,
        "SIGHTLINE_KEY_CACHE_SECONDS": "0",
        **extra,
    }
    log = tmp / f"serve-{uuid.uuid4().hex[:6]}.log"
    process, url = start_server(database_url, log, env=env)
    return GatewayServer(url, database_url, log, env, process)


@pytest.fixture(scope="module")
def gateway(fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    server = launch(tmp_path_factory.mktemp("gateway"), fake.base_url, SIGHTLINE_UPSTREAM_TIMEOUT="3")
    try:
        yield server
    finally:
        stop_server(server.process)


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@dataclass
class InProc:
    """The app in this process; ``client`` is the real AsyncOpenAI client over the ASGI transport."""

    http: httpx.AsyncClient
    client: openai.AsyncOpenAI
    key: str
    db: Database
    app: Any

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    def new_key(self, project: str | None = None) -> str:
        with self.db.transaction() as conn:
            secret, _ = create_key(conn, project or unique(), "dev")
        return secret

    async def generations(self, count: int, key: str | None = None, **params: str) -> list[dict[str, Any]]:
        import asyncio

        for _ in range(500):
            r = await self.http.get("/api/generations", params=params, headers=self.headers(key))
            data: list[dict[str, Any]] = r.json()["data"]
            if len(data) >= count:
                return data
            await asyncio.sleep(0.01)
        raise AssertionError(f"fewer than {count} generations were recorded")


@pytest.fixture
async def inproc(database_url: str, upstream: FakeUpstream) -> AsyncIterator[InProc]:
    from sightline.server.app import create_app

    settings = Settings(
        database_url=database_url,
        upstream_url=upstream.url,
        upstream_api_key="sk-settings-key",
        secret_key=SECRET,
        key_cache_seconds=0,
        max_body_bytes=64 * 1024,
        upstream_timeout=2,
    )
    app = create_app(settings)
    db: Database = app.state.db
    async with app.router.lifespan_context(app):
        with db.transaction() as conn:
            secret, _ = create_key(conn, unique(), "dev")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sightline.test") as http:
            client = openai.AsyncOpenAI(
                base_url="http://sightline.test/v1", api_key=secret, http_client=http, max_retries=0
            )
            yield InProc(http, client, secret, db, app)
