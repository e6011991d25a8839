"""Server-side sessions, login throttling and the session cookie's flags, through the app over HTTP.

Each test runs on SQLite and on PostgreSQL: sessions and throttle counts live in the database so
that every server process sees them.
"""

from __future__ import annotations

import httpx
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import create_engine, inspect

from sightline.server.app import create_app
from sightline.settings import Settings
from sightline.store import tables as t
from sightline.store.access.projects import create_user
from sightline.store.engine.migrate import alembic_config
from tests.conftest import Api, free_port
from tests.dashboard.test_pages import csrf_of

PASSWORD = "a-long-password"


def browser(api: Api) -> httpx.AsyncClient:
    """A client of the same app with no API key (a browser)."""
    return httpx.AsyncClient(transport=api.http._transport, base_url="http://sightline.test")


def add_user(api: Api, username: str, role: str = "admin") -> None:
    with api.db.transaction() as conn:
        create_user(conn, username, PASSWORD, role)


async def log_in(http: httpx.AsyncClient, username: str, password: str = PASSWORD) -> httpx.Response:
    form = await http.get("/login")
    return await http.post(
        "/login", data={"username": username, "password": password, "csrf": csrf_of(form.text)}
    )


async def logged_in(api: Api, username: str, role: str = "admin") -> httpx.AsyncClient:
    add_user(api, username, role)
    http = browser(api)
    assert (await log_in(http, username)).status_code == 303
    return http


def copy_of(http: httpx.AsyncClient, api: Api) -> httpx.AsyncClient:
    """Another browser holding a copy of ``http``'s session cookie."""
    other = browser(api)
    other.cookies.set("sightline_session", http.cookies["sightline_session"])
    return other


async def post_form(http: httpx.AsyncClient, page: str, action: str, **data: str) -> httpx.Response:
    html = (await http.get(page)).text
    return await http.post(action, data={**data, "csrf": csrf_of(html)})


async def test_a_cookie_forged_with_the_old_public_constant_opens_nothing(api: Api) -> None:
    add_user(api, "root")
    http = browser(api)
    old = URLSafeTimedSerializer("sightline-development-secret-change-me", salt="sightline.dashboard.session")
    for payload in ({"u": 1, "c": "x", "p": None, "e": None}, {"s": "guess", "c": "x"}):
        http.cookies.set("sightline_session", old.dumps(payload))
        r = await http.get("/admin/users")
        assert r.status_code == 303 and r.headers["location"].startswith("/login")


async def test_a_copied_cookie_stops_working_after_logout(api: Api) -> None:
    http = await logged_in(api, "ada")
    thief = copy_of(http, api)
    assert (await thief.get("/admin/users")).status_code == 200

    r = await post_form(http, "/generations", "/logout")
    assert r.status_code == 303

    assert (await thief.get("/admin/users")).status_code == 303
    assert (await http.get("/admin/users")).status_code == 303


async def test_logging_in_again_ends_the_session_the_browser_had(api: Api) -> None:
    http = await logged_in(api, "gus")
    add_user(api, "hal")
    old_copy = copy_of(http, api)
    r = await post_form(http, "/generations", "/login", username="hal", password=PASSWORD)
    assert r.status_code == 303
    assert (await old_copy.get("/generations")).status_code == 303
    assert "hal" in (await http.get("/account")).text


async def test_a_password_change_ends_every_other_session(api: Api) -> None:
    http = await logged_in(api, "bea")
    elsewhere = browser(api)
    assert (await log_in(elsewhere, "bea")).status_code == 303
    thief = copy_of(http, api)

    wrong = await post_form(
        http, "/account", "/account/password", current_password="not-it", new_password="another-password"
    )
    assert wrong.status_code == 400 and "current password is wrong" in wrong.text
    assert (await elsewhere.get("/generations")).status_code == 200  # a refusal changes nothing

    r = await post_form(
        http, "/account", "/account/password", current_password=PASSWORD, new_password="another-password"
    )
    assert r.status_code == 303
    assert (await http.get("/account")).status_code == 200  # this browser got a new session
    assert (await elsewhere.get("/generations")).status_code == 303
    assert (await thief.get("/generations")).status_code == 303
    assert (await log_in(browser(api), "bea")).status_code == 401
    assert (await log_in(browser(api), "bea", "another-password")).status_code == 303


async def test_an_admin_ends_sessions_by_disabling_removing_or_signing_out_everywhere(api: Api) -> None:
    admin = await logged_in(api, "root")
    for action in ("signout", "disable", "remove"):
        name = f"user-{action}"
        member = await logged_in(api, name, "member")
        assert (await member.get("/generations")).status_code == 200

        r = await post_form(admin, "/admin/users", f"/admin/users/{action}", username=name)
        assert r.status_code == 303

        assert (await member.get("/generations")).status_code == 303, action
        login_again = (await log_in(browser(api), name)).status_code
        assert login_again == (303 if action == "signout" else 401), action
    assert (await admin.get("/admin/users")).status_code == 200  # the admin's own session is untouched


async def test_a_member_cannot_end_others_sessions(api: Api) -> None:
    await logged_in(api, "root")
    member = await logged_in(api, "mo", "member")
    r = await post_form(member, "/generations", "/admin/users/signout", username="root")
    assert r.status_code == 403


async def test_signing_out_everywhere_ends_ones_own_sessions(api: Api) -> None:
    http = await logged_in(api, "cy")
    other = browser(api)
    await log_in(other, "cy")
    r = await post_form(http, "/account", "/account/signout")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert (await other.get("/generations")).status_code == 303


async def test_logins_are_throttled_per_account_with_retry_after_and_a_success_resets(api: Api) -> None:
    add_user(api, "dee")
    http = browser(api)
    for _ in range(5):
        assert (await log_in(http, "dee", "wrong-password")).status_code == 401
    r = await log_in(http, "dee", "wrong-password")  # the sixth failure locks the account
    assert r.status_code == 401
    r = await log_in(http, "dee")  # even the right password waits now
    assert r.status_code == 429
    assert 1 <= int(r.headers["retry-after"]) <= 30
    assert "Too many failed logins" in r.text
    assert (await http.get("/generations")).status_code == 303  # no session was made

    # The lock ends (here: as if the time had passed); the right password works and resets the count.
    with api.db.transaction() as conn:
        conn.exec_driver_sql("UPDATE login_throttle SET locked_until_us = 0")
    assert (await log_in(http, "dee")).status_code == 303
    fresh = browser(api)
    for _ in range(5):
        assert (await log_in(fresh, "dee", "wrong-password")).status_code == 401


async def test_a_locked_account_is_locked_for_every_server_process(database_url: str) -> None:
    """Two apps over one database (two server processes): failures on one lock the other."""
    apps = [create_app(Settings(database_url=database_url, secret_key="k" * 40)) for _ in range(2)]
    with apps[0].state.db.transaction() as conn:
        create_user(conn, "eve", PASSWORD, "admin")
    async with apps[0].router.lifespan_context(apps[0]), apps[1].router.lifespan_context(apps[1]):
        clients = [
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sightline.test")
            for app in apps
        ]
        for attempt in range(6):
            assert (await log_in(clients[attempt % 2], "eve", "wrong-password")).status_code == 401
        assert (await log_in(clients[1], "eve")).status_code == 429
        assert (await log_in(clients[0], "eve")).status_code == 429


async def test_a_logout_on_one_server_process_ends_the_session_on_the_others(database_url: str) -> None:
    apps = [create_app(Settings(database_url=database_url, secret_key="k" * 40)) for _ in range(2)]
    with apps[0].state.db.transaction() as conn:
        create_user(conn, "ivy", PASSWORD, "admin")
    async with apps[0].router.lifespan_context(apps[0]), apps[1].router.lifespan_context(apps[1]):
        one, two = (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sightline.test")
            for app in apps
        )
        assert (await log_in(one, "ivy")).status_code == 303
        two.cookies.set("sightline_session", one.cookies["sightline_session"])
        assert (await two.get("/admin/users")).status_code == 200  # the same session, another process
        assert (await post_form(two, "/generations", "/logout")).status_code == 303
        assert (await one.get("/admin/users")).status_code == 303


@pytest.mark.parametrize("redis_up", [True, False])
async def test_with_redis_the_counts_live_there_and_a_redis_outage_falls_back_to_the_database(
    database_url: str, redis_up: bool
) -> None:
    redis_url = "redis://127.0.0.1:6379/0" if redis_up else f"redis://127.0.0.1:{free_port()}/0"
    apps = [
        create_app(Settings(database_url=database_url, secret_key="k" * 40, redis_url=redis_url))
        for _ in range(2)
    ]
    with apps[0].state.db.transaction() as conn:
        create_user(conn, "jo", PASSWORD, "admin")
    async with apps[0].router.lifespan_context(apps[0]), apps[1].router.lifespan_context(apps[1]):
        clients = [
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sightline.test")
            for app in apps
        ]
        for attempt in range(6):
            assert (await log_in(clients[attempt % 2], "jo", "wrong-password")).status_code == 401
        for client in clients:
            r = await log_in(client, "jo")
            assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 30
        with apps[0].state.db.read() as conn:
            counted_in_database = conn.exec_driver_sql("SELECT count(*) FROM login_throttle").scalar()
        assert counted_in_database == (0 if redis_up else 2)


async def test_logins_are_throttled_per_client_address(api: Api) -> None:
    add_user(api, "fay")
    http = browser(api)
    for n in range(20):  # twenty different accounts from one address: each below its own limit
        assert (await log_in(http, f"nobody-{n}", "wrong-password")).status_code == 401
    assert (await log_in(http, "nobody-20", "wrong-password")).status_code == 401
    r = await log_in(http, "fay")
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


@pytest.mark.parametrize("dialect", ["sqlite"])
async def test_secure_cookies_marks_the_session_cookie_secure_behind_a_tls_proxy(database_url: str) -> None:
    for secure in (False, True):
        app = create_app(Settings(database_url=database_url, secure_cookies=secure, secret_key="k" * 40))
        async with app.router.lifespan_context(app):
            http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sightline.test")
            r = await http.get("/login")
            cookie = r.headers["set-cookie"]
            assert ("; secure" in cookie.lower()) is secure, cookie


def test_migration_0004_makes_the_tables_as_defined_and_downgrades(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)
    config = alembic_config(empty_database_url)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0004")
    with engine.connect() as conn:
        differences = [
            d
            for d in compare_metadata(MigrationContext.configure(conn), t.metadata)
            if any(name in repr(d) for name in ("'sessions'", "'login_throttle'", "ix_sessions"))
        ]
    assert differences == []
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0003")
    assert not {"sessions", "login_throttle"} & set(inspect(engine).get_table_names())
    engine.dispose()
