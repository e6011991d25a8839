"""The generations list over HTTP (in process, no browser): the column choice kept per user, sorted
pages forwards and backwards, chips and page sizes, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

from tests.conftest import Api
from tests.dashboard.test_pages import csrf_of, logged_in


async def _send_many(api: Api, costs: list[float | None]) -> list[str]:
    """One generation per cost, a minute apart (the first is the oldest), with a plan and a score."""
    ids, batch = [], []
    for n, cost in enumerate(costs):
        gen_id = str(uuid.uuid4())
        ids.append(gen_id)
        body: dict[str, Any] = {
            "id": gen_id,
            "timestamp": f"2026-11-01T{n // 60:02d}:{n % 60:02d}:00Z",
            "model": {"id": "gpt-4o"},
            "input": {"type": "text", "content": [{"role": "user", "content": f"question {n} <i>x</i>"}]},
            "output": {"type": "text", "content": f"answer {n}"},
            "usage": {"promptTokens": 10, "completionTokens": 5, "cost": cost},
            "metadata": {"userId": "pat", "plan": "pro" if n % 2 else "team"},
        }
        batch.append({"type": "generation", "body": body})
    r = await api.http.post("/api/ingest", json={"batch": batch})
    assert r.status_code == 200, r.text
    return ids


def _ids(html: str) -> list[str]:
    return re.findall(r'name="ids" value="([^"]+)"', html)


def _link(html: str, rel: str) -> str | None:
    found = re.search(rf'href="([^"]+)" rel="{rel}"', html)
    return found.group(1).replace("&amp;", "&") if found else None


async def _walk(http: httpx.AsyncClient, url: str) -> tuple[list[list[str]], str]:
    """The ids of every page from ``url`` on, following Next; and the last page's html."""
    pages: list[list[str]] = []
    html = ""
    next_url: str | None = url
    while next_url:
        r = await http.get(next_url)
        assert r.status_code == 200, r.text
        html = r.text
        pages.append(_ids(html))
        next_url = _link(html, "next")
    return pages, html


async def test_sorted_pages_forwards_and_back_hold_every_row_once_in_order(api: Api) -> None:
    costs: list[float | None] = [0.5, None, 0.1, 0.3, 0.3, None, 0.9, 0.2, 0.3, 0.7, 0.05]
    ids = await _send_many(api, costs)
    http = await logged_in(api)
    by_id = dict(zip(ids, costs, strict=True))

    pages, _ = await _walk(http, "/generations?sort=-cost&limit=25")
    assert len(pages) == 1
    for sort in ("-cost", "cost"):
        pages, last = await _walk(http, f"/generations?sort={sort}&limit=3")
        shown = [gen_id for page in pages for gen_id in page]
        assert sorted(shown) == sorted(ids), "a row was lost or shown twice across pages"
        priced = [by_id[i] for i in shown if by_id[i] is not None]
        assert priced == sorted(priced, reverse=sort == "-cost")
        # a missing cost sorts as the smallest (as the API's sort does): last going down, first going up
        nulls = [n for n, i in enumerate(shown) if by_id[i] is None]
        assert nulls == ([len(shown) - 2, len(shown) - 1] if sort == "-cost" else [0, 1])
        # and back: Previous from the last page gives the pages before it, the same rows
        back = _link(last, "prev")
        for expected in reversed(pages[:-1]):
            assert back is not None
            html = (await http.get(back)).text
            assert _ids(html) == expected
            back = _link(html, "prev")
        assert back is None  # the first page has no page before it


async def test_position_and_page_size_show_where_the_page_is(api: Api) -> None:
    await _send_many(api, [0.01] * 7)
    http = await logged_in(api)
    first = (await http.get("/generations?limit=25")).text
    assert 'value="25" selected' in first
    assert "question 6 &lt;i&gt;x&lt;/i&gt;" in first and "<i>x</i>" not in first  # input previews, escaped
    html = (await http.get("/generations?limit=3")).text
    assert re.search(r'aria-label="Position">1–3 of 7<', html)
    second = (await http.get(_link(html, "next") or "")).text
    assert re.search(r'aria-label="Position">4–6 of 7<', second)
    bad = await http.get("/generations?sort=price")
    assert bad.status_code == 400 and "sort: expected one of time, cost, latency, tokens" in bad.text


async def test_each_filter_in_use_is_a_chip_that_removes_it(api: Api) -> None:
    await _send_many(api, [0.01])
    http = await logged_in(api)
    html = (await http.get("/generations?userId=pat&model.id=gpt-4o&meta=plan%3Dteam&sort=-cost")).text
    chips = dict(
        (re.sub(r"<[^>]+>", "", text).strip(), href.replace("&amp;", "&"))
        for href, text in re.findall(r'<a class="filter-chip" href="([^"]+)"[^>]*>(.*?)</a>', html)
    )
    assert set(chips) == {"User: pat ×", "Model: gpt-4o ×", "plan = team ×"}
    assert "userId" not in chips["User: pat ×"] and "model.id=gpt-4o" in chips["User: pat ×"]
    assert "sort=-cost" in chips["User: pat ×"]  # removing a filter keeps the order


async def test_columns_are_kept_per_user_and_project_and_checked(api: Api) -> None:
    await _send_many(api, [0.01, 0.02])
    http = await logged_in(api, "ann")
    page = await http.get("/generations")
    assert '<th scope="col" class="num">' in page.text and ">plan</th>" not in page.text
    csrf = csrf_of(page.text)
    form = {
        "csrf": csrf,
        "columns": ["time", "metadata.plan", "score.helpfulness", "cost"],
        "next": "/generations",
    }
    saved = await http.post("/generations/columns", data=form)
    assert saved.status_code == 303 and saved.headers["location"] == "/generations"
    html = (await http.get("/generations")).text
    heads = re.findall(r'<th scope="col"[^>]*>(.*?)</th>', html, re.S)
    heads = [" ".join(re.sub(r"<[^>]+>|[▼▲]", "", h).split()) for h in heads]
    assert heads == ["Select", "Time", "plan", "helpfulness", "Cost"]
    assert ">team</a>" in html and ">pro</a>" in html  # the metadata values, as filter links

    # Another user keeps the default columns.
    other = await logged_in(api, "bob")
    assert ">plan</th>" not in (await other.get("/generations")).text

    # Forged, malformed or foreign: refused, nothing changes.
    assert (await http.post("/generations/columns", data={**form, "csrf": "forged"})).status_code == 403
    bad = await http.post("/generations/columns", data={"csrf": csrf, "columns": ["nope"]})
    assert bad.status_code == 400 and "columns: &#39;nope&#39; is not a column" in bad.text
    bad = await http.post("/generations/columns", data={"csrf": csrf, "columns": ["score.a b"]})
    assert bad.status_code == 400
    away = await http.post("/generations/columns", data={**form, "next": "https://evil.test/"})
    assert away.headers["location"].startswith("/generations")
    reset = await http.post("/generations/columns", data={"csrf": csrf, "reset": "1", "next": "/generations"})
    assert reset.status_code == 303
    assert ">plan</th>" not in (await http.get("/generations")).text


def test_an_input_preview_is_what_the_last_message_read_whole_says() -> None:
    from sightline.store.generations.reads.listing import input_text

    assert input_text("a plain prompt") == "a plain prompt"
    assert input_text(
        '[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi \\"you\\""}]'
    ) == ('hi "you"')
    cut = '[{"role": "system", "content": "be brief"}, {"role": "user", "content": "a very long que'
    assert input_text(cut) == "be brief"  # cut by the database: the last message it read whole
    assert input_text(None) == ""


async def test_a_search_combines_with_a_sort_and_shows_as_a_chip(api: Api) -> None:
    ids = await _send_many(api, [0.3, 0.1, 0.2])
    http = await logged_in(api)
    html = (await http.get("/generations?q=answer&sort=cost")).text
    assert _ids(html) == [ids[1], ids[2], ids[0]]
    assert re.search(r'class="filter-chip"[^>]*><span>Search: answer</span>', html)
    assert "No generations match" in (await http.get("/generations?q=zebra&sort=cost")).text
