"""The cache shared by several server processes: Redis (127.0.0.1:6379), or the database without it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from sightline.store import tables as t
from sightline.store.access.projects import find_key
from tests.conftest import stop_server
from tests.fake_openai import FakeOpenAI
from tests.gateway.conftest import GatewayServer, launch, unique, wait_for

REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_running() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def _pair(tmp: Path, upstream_url: str, **env: str) -> tuple[GatewayServer, GatewayServer]:
    first = launch(tmp, upstream_url, **env)
    try:
        second = launch(tmp, upstream_url, database_url=first.database_url, **env)
    except Exception:
        stop_server(first.process)
        raise
    return first, second


@pytest.fixture
def redis_pair(tmp_path: Path, fake: FakeOpenAI) -> Iterator[tuple[GatewayServer, GatewayServer]]:
    if not _redis_running():
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    first, second = _pair(tmp_path, fake.base_url, SIGHTLINE_REDIS_URL=REDIS_URL)
    try:
        yield first, second
    finally:
        stop_server(first.process)
        stop_server(second.process)


def _ask(server: GatewayServer, key: str, marker: str) -> str:
    raw = server.client(key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": marker}],
        extra_headers={"X-Sightline-Cache": "use"},
    )
    return str(raw.headers["x-sightline-cache"])


def _cache_rows(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(t.gateway_cache)) or 0)
    finally:
        engine.dispose()


def _install_id(database_url: str) -> str:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return str(conn.scalar(select(t.install.c.id)))
    finally:
        engine.dispose()


def _project_id(database_url: str, secret: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            found = find_key(conn, secret)
    finally:
        engine.dispose()
    assert found is not None
    return found.project_id


def test_two_processes_share_the_cache_through_redis(redis_pair: tuple[GatewayServer, GatewayServer]) -> None:
    import redis

    first, second = redis_pair
    key = first.new_key()
    # Named under the install's own id: another install on the same Redis (an earlier run) never meets it.
    pattern = f"sightline:{_install_id(first.database_url)}:cache:{_project_id(first.database_url, key)}:*"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        marker = unique("redis")
        assert _ask(first, key, marker) == "MISS"
        names = wait_for(lambda: list(client.scan_iter(pattern)))  # stored in the background
        assert len(names) == 1 and client.ttl(names[0]) > 0
        assert _ask(second, key, marker) == "HIT"
        assert _ask(first, key, marker) == "HIT"
        assert _cache_rows(first.database_url) == 0  # Redis, not the database, is the shared layer
        client.delete(*names)
    finally:
        client.close()
    gens = first.generations(key, 3)
    assert sorted(g["cacheHit"] for g in gens) == [False, True, True]


def test_without_redis_processes_share_the_cache_through_the_database(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    first, second = _pair(tmp_path, fake.base_url)
    try:
        key = first.new_key()
        marker = unique("db")
        assert _ask(first, key, marker) == "MISS"
        assert wait_for(lambda: _cache_rows(first.database_url) == 1)  # stored in the background
        assert _ask(second, key, marker) == "HIT"
    finally:
        stop_server(first.process)
        stop_server(second.process)
