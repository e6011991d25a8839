"""The AI-Eye endpoints (``/api/openai/{endpoint}/``) in this process, on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.gateway.conftest import InProc, unique
from tests.gateway.upstream import FakeUpstream


async def test_edits_answer_the_text_as_chat_does(inproc: InProc, upstream: FakeUpstream) -> None:
    body = {"model": "text-davinci-edit-001", "input": unique("teh cat"), "instruction": "Fix the spelling"}
    r = await inproc.http.post("/api/openai/v1/edits/", json=body, headers=inproc.headers())
    assert r.status_code == 200, r.text
    answer = r.json()
    assert isinstance(answer["response"], str) and answer["response"].startswith("reply #")
    assert answer["cache_hit"] is False
    assert upstream.requests[-1].path == "/v1/edits" and upstream.requests[-1].body == body
    assert r.headers["x-sightline-cache"] == "MISS"
    [gen] = await inproc.generations(1)
    assert gen["id"] == r.headers["x-sightline-generation-id"]


async def test_chat_answers_its_text_then_from_the_cache(inproc: InProc) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": unique("hi")}], "stream": True}
    first = await inproc.http.post("/api/openai/v1/chat/completions/", json=body, headers=inproc.headers())
    again = await inproc.http.post("/api/openai/v1/chat/completions/", json=body, headers=inproc.headers())
    assert first.json()["response"].startswith("reply #") and first.json()["cache_hit"] is False
    assert again.json() == {"response": first.json()["response"], "cache_hit": True}
    assert again.headers["x-sightline-cache"] == "HIT"
    gens = await inproc.generations(2)
    assert sorted(g["cacheHit"] for g in gens) == [False, True]


async def test_an_upstream_error_comes_back_as_it_was(inproc: InProc) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
    r = await inproc.http.post(
        "/api/openai/v1/chat/completions/", json=body, headers={**inproc.headers(), "x-fake-status": "429"}
    )
    assert r.status_code == 429 and r.json()["error"]["message"] == "fake upstream error 429"
    [gen] = await inproc.generations(1)
    assert gen["status"] == "error"
