"""The key lookup the gateway and the API share (``sightline.gateway.keys``), on SQLite and PostgreSQL.

Database reads are counted as the database driver sees them (SQLAlchemy's cursor events on the real
engine), and the slow lookup is a real lock held on the real ``api_keys`` table.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, event, text

from sightline.errors import AuthenticationError
from sightline.feedback_key import hash_api_key
from sightline.gateway import KeyLookup, bearer_token
from sightline.settings import Settings
from sightline.store import Database
from sightline.store.access.projects import create_key, revoke_key
from tests.gateway.conftest import SECRET, unique
from tests.gateway.upstream import FakeUpstream

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


class KeyReads:
    """The statements on ``api_keys`` an engine ran, with the thread that ran each."""

    def __init__(self, engine: Engine) -> None:
        self.threads: list[int] = []
        self._engine = engine
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "api_keys" in statement:
            self.threads.append(threading.get_ident())

    def __len__(self) -> int:
        return len(self.threads)

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._seen)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    try:
        yield database
    finally:
        database.engine.dispose()


@pytest.fixture
def reads(db: Database) -> Iterator[KeyReads]:
    counted = KeyReads(db.engine)
    yield counted
    counted.close()


def _new_key(db: Database) -> str:
    with db.transaction() as conn:
        return create_key(conn, unique(), "dev")[0]


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer    ", "Basic dXNlcjpwYXNz", "sl_key_without_scheme"]
)
def test_a_request_without_a_bearer_token_is_refused(header: str | None) -> None:
    with pytest.raises(AuthenticationError, match="missing API key"):
        bearer_token(header)


def test_the_bearer_scheme_is_read_in_any_case() -> None:
    assert bearer_token("Bearer sl_abc") == "sl_abc"
    assert bearer_token("bearer   sl_abc  ") == "sl_abc"
    assert bearer_token("BEARER sl_abc") == "sl_abc"


async def test_a_flood_of_unknown_keys_reads_each_key_once_per_interval(
    db: Database, reads: KeyReads
) -> None:
    clock = Clock()
    keys = KeyLookup(db, 5.0, clock=clock)
    unknown = [f"sl_unknown_{unique()}" for _ in range(3)]
    flood = [unknown[i % 3] for i in range(300)]
    assert await asyncio.gather(*(keys.lookup(s) for s in flood)) == [None] * 300
    assert len(reads) == 3  # lookups of a key while its read is under way wait for that read
    assert await asyncio.gather(*(keys.lookup(s) for s in flood)) == [None] * 300
    assert len(reads) == 3  # refused a moment ago: refused again without asking
    clock.now += 5.01
    assert await asyncio.gather(*(keys.lookup(s) for s in flood)) == [None] * 300
    assert len(reads) == 6  # the next interval asks once more


async def test_a_found_key_is_trusted_for_the_interval_and_a_forgotten_one_asked_again(
    db: Database, reads: KeyReads
) -> None:
    clock = Clock()
    keys = KeyLookup(db, 5.0, clock=clock)
    secret, other = _new_key(db), _new_key(db)
    found = await keys.lookup(secret)
    assert found is not None and found.environment == "dev"
    assert (await keys.authenticate(f"Bearer {secret}")).key == found
    with db.transaction() as conn:
        revoke_key(conn, str(found.id))
    before = len(reads)
    assert await keys.lookup(secret) == found  # trusted for the interval: no read
    assert len(reads) == before
    clock.now += 5.01
    assert await keys.lookup(secret) is None  # read again: revoked
    with pytest.raises(AuthenticationError, match="unknown or revoked"):
        await keys.authenticate(f"Bearer {secret}")

    assert await keys.lookup(other) is not None
    with db.transaction() as conn:
        revoke_key(conn, other[:10])
    keys.forget(hash_api_key(other))  # what the process that revoked it does
    assert await keys.lookup(other) is None


async def test_without_an_interval_every_lookup_reads(db: Database, reads: KeyReads) -> None:
    keys = KeyLookup(db, 0.0)
    secret = _new_key(db)
    before = len(reads)
    for _ in range(3):
        assert await keys.lookup(secret) is not None
        assert await keys.lookup("sl_unknown") is None
    assert len(reads) - before == 6


async def test_the_database_is_read_off_the_event_loop(db: Database, reads: KeyReads) -> None:
    keys = KeyLookup(db, 1.0)
    secret = _new_key(db)
    before = len(reads)
    await keys.lookup(secret)
    await keys.lookup("sl_unknown")
    lookups = reads.threads[before:]
    assert len(lookups) == 2 and threading.get_ident() not in lookups


async def test_remembered_answers_are_bounded(db: Database, reads: KeyReads) -> None:
    keys = KeyLookup(db, 60.0, size=4)
    secret = _new_key(db)
    before = len(reads)
    assert await keys.lookup(secret) is not None
    for i in range(10):  # made-up keys push out only made-up keys
        await keys.lookup(f"sl_unknown_{i}")
    assert await keys.lookup(secret) is not None
    assert await keys.lookup("sl_unknown_9") is None
    assert len(reads) - before == 11
    await keys.lookup("sl_unknown_0")  # pushed out: asked again
    assert len(reads) - before == 12


@asynccontextmanager
async def _app(
    database_url: str, upstream: FakeUpstream, **settings: Any
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    from sightline.server.app import create_app

    app = create_app(
        Settings(database_url=database_url, upstream_url=upstream.url, secret_key=SECRET, **settings)
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sightline.test") as http:
            yield app, http


async def test_unknown_keys_at_the_gateway_and_the_api_read_the_database_once_each(
    database_url: str, upstream: FakeUpstream
) -> None:
    async with _app(database_url, upstream, key_cache_seconds=60) as (app, http):
        reads = KeyReads(app.state.db.engine)
        sent = len(upstream.requests)
        unknown = [f"sl_{unique()}" for _ in range(4)]

        async def v1(i: int) -> httpx.Response:
            auth = {"Authorization": f"Bearer {unknown[i % 4]}"}
            return await http.post("/v1/chat/completions", json=CHAT, headers=auth)

        async def api(i: int) -> httpx.Response:
            return await http.get("/api/generations", headers={"Authorization": f"Bearer {unknown[i % 4]}"})

        answers = await asyncio.gather(*(v1(i) for i in range(100)), *(api(i) for i in range(100)))
        assert {r.status_code for r in answers} == {401}
        assert {r.json()["error"]["message"] for r in answers} == {"unknown or revoked API key"}
        assert len(reads) <= 4
        assert len(upstream.requests) == sent
        reads.close()


async def test_the_same_missing_bearer_answer_at_the_gateway_and_the_api(
    database_url: str, upstream: FakeUpstream
) -> None:
    async with _app(database_url, upstream) as (_, http):
        for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "}):
            v1 = await http.post("/v1/chat/completions", json=CHAT, headers=headers)
            api = await http.get("/api/generations", headers=headers)
            assert v1.status_code == api.status_code == 401
            assert v1.json()["error"]["message"] == api.json()["error"]["message"]
            assert "missing API key" in api.json()["error"]["message"]


def _lock_waiters(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks l JOIN pg_class c ON l.relation = c.oid "
                    "WHERE c.relname = 'api_keys' AND NOT l.granted"
                )
            ).scalar_one()
        )


@pytest.mark.parametrize("dialect", ["postgresql"])
async def test_healthz_answers_while_a_key_lookup_waits_for_the_database(
    database_url: str, upstream: FakeUpstream
) -> None:
    locker = create_engine(database_url)
    watcher = create_engine(database_url)
    conn = locker.connect()
    released = threading.Lock()
    done = False

    def release() -> None:
        nonlocal done
        with released:
            if not done:
                done = True
                conn.rollback()

    # A key lookup that blocked the event loop would hold up everything until this fires; then
    # /healthz could only answer after it.
    timer = threading.Timer(30, release)
    try:
        async with _app(database_url, upstream, key_cache_seconds=0) as (_, http):
            conn.execute(text("LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE"))  # held until rollback
            timer.start()
            auth = {"Authorization": f"Bearer sl_{unique()}"}
            waiting = asyncio.create_task(http.post("/v1/chat/completions", json=CHAT, headers=auth))
            while not waiting.done() and not await asyncio.to_thread(_lock_waiters, watcher):
                await asyncio.sleep(0.01)
            health = await http.get("/healthz")
            assert health.status_code == 200
            assert not waiting.done(), "/healthz waited for the key lookup"
            release()
            assert (await waiting).status_code == 401
    finally:
        timer.cancel()
        release()
        conn.close()
        locker.dispose()
        watcher.dispose()
