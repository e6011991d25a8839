"""No read can stall the server: regexes run in linear time, every read has a time budget, and reads
run off the event loop, so ``/healthz`` and other projects answer while a slow query runs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from sightline.errors import QueryTimeout
from sightline.settings import Settings
from sightline.store import Database
from sightline.store.access.projects import create_key
from tests.conftest import Api

SLOW = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) "
    "SELECT count(*) FROM c"
)


@asynccontextmanager
async def serving(database_url: str, **settings: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Database]]:
    """The app over ASGI with ``settings``, and a key of project ``demo``."""
    from sightline.server.app import create_app

    app = create_app(Settings(database_url=database_url, key_cache_seconds=0, **settings))
    db: Database = app.state.db
    async with app.router.lifespan_context(app):
        with db.transaction() as conn:
            secret, _ = create_key(conn, "demo", "dev")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://sightline.test",
            headers={"Authorization": f"Bearer {secret}"},
        ) as http:
            yield http, db


def _gen(**fields: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "model": {"id": "gpt-4o"}, **fields}


async def _ingest(http: httpx.AsyncClient, gens: list[dict[str, Any]]) -> None:
    for start in range(0, len(gens), 300):
        batch = [{"type": "generation", "body": g} for g in gens[start : start + 300]]
        r = await http.post("/api/ingest", json={"batch": batch})
        assert r.status_code == 200, r.text


async def _many(http: httpx.AsyncClient, n: int = 4000) -> None:
    """``n`` generations whose prompt is 5 KB of text: a scan that no budget of a few milliseconds
    covers (regex over 20 MB of JSON)."""
    await _ingest(http, [_gen(input={"content": f"{i} " + "lorem ipsum " * 420}) for i in range(n)])


SCAN = {"filter": {"input.content": {"$regex": "ipsum z"}}}


async def test_a_backtracking_regex_answers_at_once(api: Api) -> None:
    """The issue's query: ``^(a+)+$`` over 27 a's and a '!' took 5.7 s in Python's backtracking engine."""
    await _ingest(api.http, [_gen(metadata={"s": "a" * 27 + "!"}), _gen(metadata={"s": "aaa"})])
    r = await api.http.post("/api/generations/query", json={"filter": {"metadata.s": {"$regex": "^(a+)+$"}}})
    assert r.status_code == 200 and [g["metadata"]["s"]["value"] for g in r.json()["data"]] == ["aaa"]
    r = await api.http.post(
        "/api/generations/query", json={"filter": {"input.content": {"$regex": "(x+x+)+y"}}}
    )
    assert r.status_code == 200 and r.json()["data"] == []


async def test_patterns_that_need_backtracking_are_refused_naming_the_field(api: Api) -> None:
    for pattern in ("(a)\\1", "a(?=b)", "(?<!a)b"):
        r = await api.http.post(
            "/api/generations/query", json={"filter": {"metadata.s": {"$regex": pattern}}}
        )
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["type"] == "invalid_request" and "metadata.s" in error["message"]
        assert "linear time" in error["message"]


async def test_patterns_postgresql_cannot_read_are_a_400_there(api: Api, dialect: str) -> None:
    """RE2 syntax that PostgreSQL's engine does not take: refused there with a 400, never a 500."""
    await _ingest(api.http, [_gen(metadata={"s": "ab"})])
    for pattern in ("(?P<n>a)", "\\pL", "a(?i)b", "\\Qa\\E"):
        r = await api.http.post(
            "/api/generations/query", json={"filter": {"metadata.s": {"$regex": pattern}}}
        )
        if dialect == "sqlite":
            assert r.status_code == 200, r.text
        else:
            assert r.status_code == 400 and "$regex" in r.json()["error"]["message"], r.text


def test_sqlite_regexp_is_re2(sqlite_url: str) -> None:
    """SQLite's REGEXP is ours (RE2), not SQLAlchemy's Python ``re``: lookaround does not compile."""
    db = Database(sqlite_url)
    with db.read() as conn:
        assert conn.execute(text("SELECT 'abc' REGEXP '^a.c$', 'abd' REGEXP 'c$'")).one() == (1, 0)
        with pytest.raises(OperationalError):
            conn.execute(text("SELECT 'ab' REGEXP 'a(?=b)'")).scalar()
    db.close()


def test_every_read_has_a_time_budget(database_url: str) -> None:
    db = Database(database_url, query_timeout=0.2)
    with pytest.raises(QueryTimeout) as caught, db.read() as conn:
        conn.execute(text(SLOW)).scalar()
    assert caught.value.field == "query_timeout" and "0.2 s" in caught.value.message
    with db.read() as conn:  # the pooled connection serves the next read, without the old budget
        assert conn.execute(text("SELECT 1")).scalar() == 1
    with db.transaction() as conn:  # writes have no read budget
        assert conn.execute(text("SELECT count(*) FROM (SELECT 1) AS one")).scalar() == 1
    db.close()


async def test_a_query_past_its_budget_is_cancelled_with_a_503_naming_it(database_url: str) -> None:
    async with serving(database_url, query_timeout=0.005) as (http, _):
        await _many(http)
        for path, body in (
            ("/api/generations/query", SCAN),
            ("/api/generations/aggregate", {"pipeline": [{"$match": SCAN["filter"]}, {"$count": "n"}]}),
            ("/api/generations/export", {"filters": SCAN["filter"]}),
        ):
            r = await http.post(path, json=body)
            assert r.status_code == 503, (path, r.text)
            error = r.json()["error"]
            assert error["type"] == "query_timeout" and "query_timeout" in error["message"], error
        assert (await http.get("/healthz")).status_code == 200  # the server itself is fine


async def test_healthz_and_other_projects_answer_while_a_slow_query_runs(database_url: str) -> None:
    async with serving(database_url, query_timeout=60) as (http, db):
        await _many(http)
        with db.transaction() as conn:
            other, _ = create_key(conn, "other", "dev")
        slow = asyncio.create_task(http.post("/api/generations/query", json=SCAN))
        await asyncio.sleep(0)  # the query is on its way to a thread of the pool
        health = await http.get("/healthz")
        listed = await http.get("/api/generations", headers={"Authorization": f"Bearer {other}"})
        assert health.status_code == 200 and listed.status_code == 200
        assert not slow.done()  # both answered while the query still ran
        r = await slow
        assert r.status_code == 200 and r.json()["data"] == []


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/generations/query", {"skip": 9223372036854775808}, "skip"),
        ("/api/generations/query", {"skip": 2**70}, "skip"),
        ("/api/generations/query", {"skip": True}, "skip"),
        ("/api/generations/aggregate", {"pipeline": [{"$skip": 2**63}]}, "$skip"),
        ("/api/generations/aggregate", {"pipeline": [{"$limit": 2**63}]}, "$limit"),
        ("/api/generations/aggregate", {"pipeline": [{"$group": {"_id": None, "n": {"$sum": 2**63}}}]}, "n"),
        ("/api/generations/aggregate", {"pipeline": [{"$group": {"_id": 2**63}}]}, "_id"),
        (
            "/api/generations/aggregate",
            {
                "pipeline": [
                    {
                        "$group": {
                            "_id": {"$dateTrunc": {"date": "$timestamp", "unit": "week", "binSize": 2**62}}
                        }
                    }
                ]
            },
            "$dateTrunc",
        ),
    ],
)
async def test_numbers_past_64_bits_are_a_400_naming_them(
    api: Api, path: str, body: dict[str, Any], field: str
) -> None:
    await _ingest(api.http, [_gen()])
    r = await api.http.post(path, json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request" and error.get("field") == field, error


async def test_text_with_a_nul_character_is_a_400(api: Api) -> None:
    """PostgreSQL's driver refuses to send text holding NUL: a filter with one is the caller's mistake."""
    await _ingest(api.http, [_gen()])
    for method, path, body in (
        ("POST", "/api/generations/query", {"filter": {"model.id": "gpt\x00"}}),
        ("POST", "/api/generations/query", {"filter": {"metadata.s": {"$regex": "a\x00"}}}),
        ("POST", "/api/generations/query", {"filter": {"$or": [{"input.content": {"$in": ["\x00"]}}]}}),
        ("POST", "/api/generations/aggregate", {"pipeline": [{"$group": {"_id": "\x00"}}]}),
        ("POST", "/api/generations/export", {"filters": {"metadata.tags": "\x00"}}),
        ("GET", "/api/generations?model.id=gpt%00", None),
    ):
        r = await api.http.request(method, path, json=body)
        assert r.status_code == 400 and "NUL" in r.json()["error"]["message"], (path, body, r.text)


async def test_a_nul_character_anywhere_in_a_read_is_never_a_5xx(api: Api) -> None:
    """Nothing stored holds NUL: SQLite finds nothing, PostgreSQL's driver refuses the value (a 400)."""
    for path in ("/api/runs?userId=a%00", "/api/runs/a%00", "/api/generations/a%00", "/api/runs?cursor=a%00"):
        r = await api.http.get(path)
        assert r.status_code < 500, (path, r.text)
        if r.status_code >= 400:
            assert set(r.json()) == {"error"} and set(r.json()["error"]) >= {"type", "message"}, r.text
