"""The gateway in this process (httpx over ASGI), on SQLite and PostgreSQL: recording, the durable cache."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import openai
import pytest

from sightline.settings import Settings
from sightline.store import Database
from sightline.store.access.projects import create_key
from sightline.store.gateway.cache import PurgeExpired, StoreResponse, cached_response
from tests.gateway.conftest import SECRET, InProc, unique
from tests.gateway.upstream import FakeUpstream

MESSAGES = [{"role": "user", "content": "hello"}]


async def test_async_client_over_asgi_is_recorded(inproc: InProc, upstream: FakeUpstream) -> None:
    raw = await inproc.client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers={"X-Sightline-User-Id": "carol"}
    )
    answer = raw.parse()
    assert answer.choices[0].message.content.startswith("reply #")  # type: ignore[union-attr]
    assert upstream.requests[-1].headers["authorization"] == "Bearer sk-settings-key"
    [gen] = await inproc.generations(1)
    assert gen["id"] == raw.headers["x-sightline-generation-id"]
    assert gen["metadata"]["userId"] == "carol" and gen["usage"]["cost"] > 0


async def test_what_is_not_a_model_call_passes_through_unrecorded(inproc: InProc) -> None:
    models = await inproc.client.models.list()
    assert [m.id for m in models.data] == ["gpt-4o-mini", "x"]
    r = await inproc.http.get("/v1/files/file-1/content", headers=inproc.headers())  # streamed through
    assert r.status_code == 200 and r.content == bytes(range(256)) * 64
    assert r.headers["content-type"] == "application/octet-stream"
    marker = await inproc.client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    [gen] = await inproc.generations(1)  # only the model call was recorded
    assert gen["output"]["content"] == marker.choices[0].message.content


@asynccontextmanager
async def app_client(
    database_url: str, upstream: FakeUpstream, key: str, **settings: Any
) -> AsyncIterator[Any]:
    from sightline.server.app import create_app

    app = create_app(
        Settings(
            database_url=database_url,
            upstream_url=upstream.url,
            secret_key=SECRET,
            key_cache_seconds=0,
            **settings,
        )
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sightline.test") as http:
            yield openai.AsyncOpenAI(
                base_url="http://sightline.test/v1", api_key=key, http_client=http, max_retries=0
            )


def _key(database_url: str) -> str:
    db = Database(database_url)
    try:
        with db.transaction() as conn:
            return create_key(conn, unique(), "dev")[0]
    finally:
        db.engine.dispose()


async def _ask(client: Any, marker: str) -> tuple[str, str]:
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": marker}],
        extra_headers={"X-Sightline-Cache": "use"},
    )
    return raw.headers["x-sightline-cache"], raw.parse().choices[0].message.content


async def test_the_cache_outlives_the_process_that_filled_it(
    database_url: str, upstream: FakeUpstream
) -> None:
    key = _key(database_url)
    marker = unique("durable")
    async with app_client(database_url, upstream, key) as client:
        status, first = await _ask(client, marker)
        assert status == "MISS"
    async with app_client(database_url, upstream, key) as client:  # a new process: its LRU is empty
        assert await _ask(client, marker) == ("HIT", first)


async def test_entries_expire_after_the_ttl(database_url: str, upstream: FakeUpstream) -> None:
    key = _key(database_url)
    marker = unique("short")
    async with app_client(database_url, upstream, key, cache_ttl=1) as client:
        assert (await _ask(client, marker))[0] == "MISS"
        assert (await _ask(client, marker))[0] == "HIT"
        await asyncio.sleep(1.1)
        assert (await _ask(client, marker))[0] == "MISS"
    async with app_client(database_url, upstream, key, cache_ttl=0) as client:  # 0: nothing is stored
        other = unique("never")
        assert (await _ask(client, other))[0] == "MISS"
        assert (await _ask(client, other))[0] == "MISS"


async def test_a_silent_upstream_is_504(database_url: str, upstream: FakeUpstream) -> None:
    key = _key(database_url)
    async with app_client(database_url, upstream, key, upstream_timeout=0.3) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-fake-delay": "1"}
            )
    assert caught.value.status_code == 504


async def test_a_body_over_the_limit_is_413(inproc: InProc) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        await inproc.client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x" * 100_000}]
        )
    assert caught.value.status_code == 413


def test_cache_rows_in_the_store(database_url: str) -> None:
    db = Database(database_url)
    try:
        now = time.time_ns() // 1000
        with db.transaction() as conn:
            StoreResponse(1, "k1", "chat/completions", "m", '{"a": 1}', now, now + 10_000_000).apply(conn)
            StoreResponse(1, "k1", "chat/completions", "m", '{"a": 2}', now, now + 10_000_000).apply(conn)
            StoreResponse(1, "old", "chat/completions", None, "{}", now - 10, now - 1).apply(conn)
        with db.read() as conn:
            assert cached_response(conn, 1, "k1", now) == ('{"a": 2}', now + 10_000_000)
            assert cached_response(conn, 2, "k1", now) is None  # per project
            assert cached_response(conn, 1, "old", now) is None  # expired
        with db.transaction() as conn:
            assert PurgeExpired(now).apply(conn) == 1
    finally:
        db.engine.dispose()


async def _until(fetch: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await fetch()
        if value:
            return value
        await asyncio.sleep(0.01)
    return None


async def test_the_lru_sees_an_entry_renewed_by_another_process(database_url: str) -> None:
    from sightline.gateway import ResponseCache

    db = Database(database_url)
    db.start()
    try:
        mine, theirs = ResponseCache(db, 60, trust=0.0), ResponseCache(db, 60, trust=0.0)
        mine.put(1, "k", "chat/completions", "m", b'{"v": 1}')
        assert await _until(lambda: theirs.get(1, "k")) == b'{"v": 1}'  # read through the database
        theirs.put(1, "k", "chat/completions", "m", b'{"v": 2}')  # renewed over there
        assert await mine.get(1, "k") == b'{"v": 1}'  # answered from memory at once ...

        async def renewed() -> bool:
            return await mine.get(1, "k") == b'{"v": 2}'

        assert await _until(renewed)  # ... and checked in the background
        await mine.aclose()
        await theirs.aclose()
    finally:
        db.close()


async def test_a_cache_that_fails_is_a_miss(database_url: str) -> None:
    from sightline.gateway import ResponseCache
    from tests.conftest import free_port

    db = Database(database_url)
    try:
        cache = ResponseCache(db, 60, redis_url=f"redis://127.0.0.1:{free_port()}/0")
        cache.put(1, "k", "chat/completions", "m", b"{}")  # in memory; Redis refuses in the background
        assert await cache.get(1, "k") == b"{}"
        assert await cache.get(1, "other") is None
        await cache.aclose()
    finally:
        db.engine.dispose()
