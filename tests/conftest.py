"""Shared fixtures: real SQLite files, the real PostgreSQL server, the app over HTTP, a real server process.

``dialect`` runs a test once on SQLite and once on PostgreSQL (127.0.0.1:5432). Each test gets a
database of its own: a file under ``tmp_path``, or a PostgreSQL database cloned from a migrated
template (fast to make, dropped afterwards).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from sightline.settings import Settings
from sightline.store import Database, migrate
from sightline.store.access.projects import create_key

PG_ADMIN_URL = os.environ.get(
    "SIGHTLINE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
_TEMPLATE = f"sightline_tpl_{os.getpid()}"


def _pg_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def _pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str | None]:
    """A migrated PostgreSQL database that per-test databases are cloned from."""
    if not _pg_available():
        if os.environ.get("CI"):
            raise RuntimeError("PostgreSQL is not running on 127.0.0.1:5432 (CI must have it)")
        yield None
        return
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{_TEMPLATE}"'))
        conn.execute(text(f'CREATE DATABASE "{_TEMPLATE}"'))
    engine = create_engine(_pg_url(_TEMPLATE))
    migrate(engine)
    engine.dispose()
    yield _TEMPLATE
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{_TEMPLATE}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(dialect: str, tmp_path: Path, pg_template: str | None) -> Iterator[str]:
    """A fresh, migrated database of the test's dialect."""
    if dialect == "sqlite":
        url = f"sqlite:///{tmp_path / 'sightline.db'}"
        engine = create_engine(url)
        migrate(engine)
        engine.dispose()
        yield url
        return
    if pg_template is None:
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    yield from _pg_database(f'TEMPLATE "{pg_template}"')


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """A started :class:`Database` (its writer running) over a fresh migrated database."""
    database = Database(database_url)
    database.start()
    yield database
    database.close()


@pytest.fixture
def empty_database_url(dialect: str, tmp_path: Path, pg_template: str | None) -> Iterator[str]:
    """A database of the test's dialect with no schema at all (for migration tests)."""
    if dialect == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    if pg_template is None:
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    yield from _pg_database("")


def _pg_database(options: str) -> Iterator[str]:
    """A new PostgreSQL database made with ``options`` (e.g. its template), dropped afterwards."""
    name = f"sightline_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" {options}'))
    yield _pg_url(name)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sightline.db'}"


@dataclass
class Api:
    """The app over HTTP (httpx through ASGI, no sockets) with an API key of project ``demo``/``dev``."""

    http: httpx.AsyncClient
    db: Database
    key: str
    settings: Settings

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    def new_key(self, project: str = "demo", environment: str = "dev") -> str:
        with self.db.transaction() as conn:
            secret, _ = create_key(conn, project, environment)
        return secret


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    from sightline.server.app import create_app

    settings = Settings(database_url=database_url, max_body_bytes=2 * 1024 * 1024, key_cache_seconds=0)
    app = create_app(settings)
    db: Database = app.state.db
    async with app.router.lifespan_context(app):
        with db.transaction() as conn:
            secret, _ = create_key(conn, "demo", "dev")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://sightline.test",
            headers={"Authorization": f"Bearer {secret}"},
        ) as http:
            yield Api(http, db, secret, settings)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sightline_command() -> list[str]:
    exe = shutil.which("sightline", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "sightline.cli"]


@dataclass
class ServerProcess:
    """A real ``sightline serve`` process on a free port."""

    url: str
    database_url: str
    key: str
    process: subprocess.Popen[bytes]
    log: Path

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "SIGHTLINE_DATABASE_URL": self.database_url}
        return subprocess.run(
            [*sightline_command(), *args], env=env, capture_output=True, text=True, timeout=60
        )


def start_server(
    database_url: str, log: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    full_env = {**os.environ, "SIGHTLINE_DATABASE_URL": database_url, **(env or {})}
    process = subprocess.Popen(
        [*sightline_command(), "serve", "--port", str(port), *args],
        env=full_env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sightline serve exited: {log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"sightline serve did not start: {log.read_text()}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """``sightline serve`` on a temporary SQLite file, with a key made by ``sightline token create``."""
    database_url = f"sqlite:///{tmp_path / 'server.db'}"
    env = {**os.environ, "SIGHTLINE_DATABASE_URL": database_url}
    made = subprocess.run(
        [*sightline_command(), "token", "create", "--project", "demo", "--environment", "dev"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    process, url = start_server(database_url, tmp_path / "server.log")
    try:
        yield ServerProcess(url, database_url, made.stdout.strip(), process, tmp_path / "server.log")
    finally:
        stop_server(process)
