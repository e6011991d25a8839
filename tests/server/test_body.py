"""The one body reader (``server/body.py``): the same limits and refusals at the API and the gateway."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from sightline.settings import Settings
from sightline.store.access.projects import create_key

LIMIT = 64 * 1024
ROUTES = ["/api/generations/query", "/v1/chat/completions", "/api/openai/v1/chat/completions/"]


@pytest.fixture
async def app_http(sqlite_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    from sightline.server.app import create_app

    app = create_app(
        Settings(database_url=sqlite_url, max_body_bytes=LIMIT, upstream_url="http://127.0.0.1:9/v1")
    )
    async with app.router.lifespan_context(app):
        with app.state.db.transaction() as conn:
            secret, _ = create_key(conn, "demo", "dev")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sightline.test") as http:
            yield http, {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}


def _chunks(size: int) -> Iterator[bytes]:
    yield b'{"filter": {"metadata.note": "'
    for _ in range(size // 4096):
        yield b"a" * 4096
    yield b'"}}'


async def _chunked(size: int) -> AsyncIterator[bytes]:
    for chunk in _chunks(size):
        yield chunk


CASES: list[tuple[str, dict[str, str], Any, int, str]] = [
    ("declared too long", {}, b"x" * (LIMIT + 1), 413, "over the limit"),
    ("streamed too long", {}, "chunked", 413, "over the limit"),
    ("gzip bomb", {"Content-Encoding": "gzip"}, gzip.compress(b" " * (LIMIT * 4)), 413, "decompressed"),
    ("not gzip", {"Content-Encoding": "gzip"}, b"{}", 400, "not valid gzip"),
    ("unknown encoding", {"Content-Encoding": "br"}, b"{}", 400, "Content-Encoding 'br'"),
]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
async def test_every_route_reads_bodies_with_the_same_limits(
    app_http: tuple[httpx.AsyncClient, dict[str, str]],
    route: str,
    case: tuple[str, dict[str, str], Any, int, str],
) -> None:
    http, auth = app_http
    _, headers, content, status, words = case
    body = _chunked(LIMIT * 2) if content == "chunked" else content
    r = await http.post(route, content=body, headers={**auth, **headers})
    assert r.status_code == status, r.text
    assert words in r.json()["error"]["message"]


async def test_a_body_sent_in_many_pieces_is_read_whole(
    app_http: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    http, auth = app_http
    r = await http.post("/api/generations/query", content=_chunked(LIMIT // 2), headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["data"] == []
    gz = await http.post(
        "/api/generations/query",
        content=gzip.compress(b'{"filter": {}}'),
        headers={**auth, "Content-Encoding": "gzip"},
    )
    assert gz.status_code == 200, gz.text
