"""Sessions, CSRF, roles and rendering rules of the dashboard, in process (ASGI, no browser)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from sightline.server.dashboard.core.render import local_path, safe_link
from sightline.server.dashboard.lists.generations import parse_filters
from sightline.server.dashboard.tools.prompts import diff
from sightline.store.access.projects import create_user
from tests.conftest import Api

sqlite_only = pytest.mark.parametrize("dialect", ["sqlite"])  # the pages' logic is the same on both


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


async def logged_in(api: Api, username: str = "admin", role: str = "admin") -> httpx.AsyncClient:
    """A client of the same app with no API key, logged in as a new user."""
    with api.db.transaction() as conn:
        create_user(conn, username, "a-long-password", role)
    http = httpx.AsyncClient(transport=api.http._transport, base_url="http://sightline.test")
    form = await http.get("/login")
    r = await http.post(
        "/login", data={"username": username, "password": "a-long-password", "csrf": csrf_of(form.text)}
    )
    assert r.status_code == 303, r.text
    return http


async def send(api: Api, **fields: Any) -> str:
    body: dict[str, Any] = {"id": str(uuid.uuid4()), "model": {"id": "gpt-4o"}, **fields}
    r = await api.http.post("/api/generations", json=body)
    assert r.status_code == 201, r.text
    return str(body["id"])


@sqlite_only
async def test_pages_need_a_session_and_a_forged_cookie_is_no_session(api: Api) -> None:
    http = httpx.AsyncClient(transport=api.http._transport, base_url="http://sightline.test")
    r = await http.get("/analytics?range=30d")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fanalytics%3Frange%3D30d"
    http.cookies.set("sightline_session", "eyJ1IjoxLCJjIjoieCJ9.forged.signature")
    assert (await http.get("/generations")).status_code == 303


@sqlite_only
async def test_login_refuses_a_missing_csrf_token_and_wrong_passwords(api: Api) -> None:
    with api.db.transaction() as conn:
        create_user(conn, "ann", "a-long-password", "member")
    http = httpx.AsyncClient(transport=api.http._transport, base_url="http://sightline.test")
    r = await http.post("/login", data={"username": "ann", "password": "a-long-password"})
    assert r.status_code == 403 and "text/html" in r.headers["content-type"]
    token = csrf_of((await http.get("/login")).text)
    r = await http.post("/login", data={"username": "ann", "password": "nope", "csrf": token})
    assert r.status_code == 401 and "Wrong username or password." in r.text
    r = await http.post(
        "/login",
        data={"username": "ann", "password": "a-long-password", "csrf": token, "next": "//evil.test/x"},
    )
    assert r.status_code == 303 and r.headers["location"] == "/generations"  # no open redirect


@sqlite_only
async def test_pages_carry_security_headers(api: Api) -> None:
    http = await logged_in(api)
    r = await http.get("/generations")
    assert r.status_code == 200
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"


@sqlite_only
async def test_members_get_403_on_admin_pages_and_forms(api: Api) -> None:
    http = await logged_in(api, "mia", "member")
    page = await http.get("/generations")
    for path in ("/admin", "/admin/users", "/admin/keys", "/admin/providers"):
        r = await http.get(path)
        assert r.status_code == 403 and "Not allowed" in r.text, path
    r = await http.post(
        "/admin/keys", data={"project": "demo", "environment": "dev", "csrf": csrf_of(page.text)}
    )
    assert r.status_code == 403
    r = await http.post(
        "/admin/users/role", data={"username": "mia", "role": "admin", "csrf": csrf_of(page.text)}
    )
    assert r.status_code == 403


@sqlite_only
async def test_a_metadata_url_that_is_not_http_is_not_a_link(api: Api) -> None:
    gen_id = await send(
        api, metadata={"bad": {"type": "url", "url": "javascript:alert(1)", "text": "click me"}}
    )
    http = await logged_in(api)
    r = await http.get(f"/generations/{gen_id}")
    assert "click me" in r.text and "(unsafe link not followed)" in r.text
    assert 'href="javascript' not in r.text


@sqlite_only
async def test_unknown_filter_shows_its_error_on_the_page(api: Api) -> None:
    http = await logged_in(api)
    r = await http.get("/generations?status=maybe")
    assert r.status_code == 400 and "status: expected ok or error" in r.text
    r = await http.get("/generations?meta=no-equals-sign&userId=ann")
    assert r.status_code == 400 and "key=value" in r.text
    assert 'value="no-equals-sign"' in r.text and 'value="ann"' in r.text  # the form keeps what was sent


@sqlite_only
async def test_the_next_page_follows_the_cursor(api: Api) -> None:
    for minute in range(5):
        await send(api, timestamp=f"2026-11-01T00:0{minute}:00Z", metadata={"userId": "pat"})
    http = await logged_in(api)
    first = await http.get("/generations?userId=pat&limit=2")
    older = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert older, "no link to older generations"
    second = await http.get(older.group(1).replace("&amp;", "&"))
    assert second.status_code == 200
    times = re.findall(r"2026-11-01 00:0(\d):00", first.text + second.text)
    assert times == ["4", "3", "2", "1"]


async def test_the_list_says_how_many_of_how_many_match_and_what_they_add_up_to(api: Api) -> None:
    for minute in range(5):
        user = "pat" if minute < 3 else "sam"
        usage = {"promptTokens": 1000, "completionTokens": 100}
        await send(api, timestamp=f"2026-11-01T00:0{minute}:00Z", metadata={"userId": user}, usage=usage)
    http = await logged_in(api)
    text = (await http.get("/generations?userId=pat&limit=2")).text
    totals = re.search(r'aria-label="Totals">(.*?)</p>', text, re.S)
    assert totals, "no totals above the list"
    line = re.sub(r"<[^>]+>", "", totals.group(1))
    # gpt-4o: 1,000 prompt and 100 completion tokens cost $0.0035 each; the page shows 2 of the 3
    assert line.startswith("3 of 5 generations · $0.0105 · 3,300 tokens"), line


async def test_long_content_is_clipped_and_the_record_is_there_whole(api: Api) -> None:
    long_prompt = "word " * 200_000  # a million characters
    gen_id = await send(
        api,
        input={"type": "text", "content": [{"role": "user", "content": long_prompt}]},
        output={"type": "text", "content": "short"},
        usage={"promptTokens": 200_000, "completionTokens": 2},
        performance={"latency": 30.0},
        template={"name": "plain", "chat": [{"role": "user", "content": "hi"}]},
    )
    http = await logged_in(api)
    html = (await http.get(f"/generations/{gen_id}")).text
    assert "Show all 1,000,000 characters" in html
    assert "Tokens / s" in html and "<h3>Template</h3>" not in html  # no parameters: no second copy
    assert re.search(r"Tokens / s</span><span class=\"stat-value\">—", html)  # 2 tokens in 30 ms
    raw = await http.get(f"/generations/{gen_id}/json")
    assert raw.status_code == 200 and raw.json()["input"]["content"][0]["content"] == long_prompt
    icon = await http.get("/favicon.ico", follow_redirects=True)
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    download = await http.get(f"/generations/{gen_id}/json", params={"download": "true"})
    assert download.headers["content-disposition"] == f'attachment; filename="{gen_id}.json"'


def test_filters_from_the_address() -> None:
    now = 10 * 86_400_000_000
    f = parse_filters(
        [("userId", "alice"), ("range", "24h"), ("meta", "plan=pro"), ("project", "demo"), ("cursor", "")],
        "prod",
        now,
    )
    assert f.filter.user_id == "alice" and f.filter.environment == "prod"
    assert f.filter.from_us == now - 86_400_000_000
    assert f.filter.metadata == {"plan": "pro"}
    assert f.params == {"userId": "alice", "range": "24h", "metadata.plan": "pro"}
    custom = parse_filters([("range", "custom"), ("from", "2026-11-01T10:00")], None, now)
    assert custom.params["from"] == "2026-11-01T10:00" and custom.params["range"] == "custom"


def test_prompt_diff_marks_added_and_removed_lines() -> None:
    lines = diff("[user]\nHello {name}\nBye", "[user]\nHi there, {name}!\nBye")
    assert [(line.kind, line.text) for line in lines] == [
        ("same", "[user]"),
        ("remove", "Hello {name}"),
        ("add", "Hi there, {name}!"),
        ("same", "Bye"),
    ]


def test_only_local_redirects_and_web_links() -> None:
    assert local_path("/runs?x=1") == "/runs?x=1"
    assert local_path("https://evil.test") == "/generations"
    assert local_path("/\\evil.test") == "/generations"
    assert safe_link("https://example.com/a") == "https://example.com/a"
    assert safe_link(" JavaScript:alert(1)") is None
    assert safe_link("data:text/html,hi") is None
