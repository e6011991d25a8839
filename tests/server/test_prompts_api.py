"""The prompts API over HTTP: versions, labels (audited), bad input named by field, project scoping,
and a dashboard session with its CSRF token."""

from __future__ import annotations

from typing import Any

import pytest

from sightline.store.access.audit import audit_entries
from sightline.store.prompts import prompt_names
from sightline.templating import template_version
from tests.conftest import Api
from tests.dashboard.test_pages import csrf_of, logged_in

sqlite_only = pytest.mark.parametrize("dialect", ["sqlite"])


async def _save(api: Api, **body: Any) -> dict[str, Any]:
    r = await api.http.post("/api/prompts", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_save_versions_read_them_back_and_move_labels(api: Api) -> None:
    first = await _save(api, name="greet", template="Hello {name}!", model="gpt-4o-mini")
    assert first == {
        "name": "greet",
        "version": 1,
        "templateVersion": template_version(None, "Hello {name}!"),
        "args": ["name"],
    }
    messages = [{"role": "system", "content": "Be {tone}."}, {"role": "user", "content": "Greet {name}"}]
    second = await _save(
        api,
        name="greet",
        messages=messages,
        model="gpt-4o",
        parameters={"temperature": 0.3, "maxTokens": 20, "jsonMode": False},
        description="chat now",
    )
    assert (second["version"], second["args"]) == (2, ["tone", "name"])

    latest = (await api.http.get("/api/prompts/greet")).json()
    assert (latest["version"], latest["type"], latest["messages"], latest["model"]) == (
        2,
        "chat",
        messages,
        "gpt-4o",
    )
    assert latest["parameters"] == {"temperature": 0.3, "maxTokens": 20, "jsonMode": False}
    assert latest["createdBy"].startswith("key:")
    v1 = (await api.http.get("/api/prompts/greet", params={"version": 1})).json()
    assert (v1["template"], v1["messages"], v1["args"]) == ("Hello {name}!", None, ["name"])
    by_hash = (await api.http.get("/api/prompts/greet", params={"version": first["templateVersion"]})).json()
    assert by_hash["version"] == 1

    r = await api.http.post("/api/prompts/greet/labels", json={"label": "production", "version": 1})
    assert r.json() == {"name": "greet", "label": "production", "version": 1, "previous": None}
    r = await api.http.post("/api/prompts/greet/labels", json={"label": "production", "version": 2})
    assert r.json()["previous"] == 1
    prod = (await api.http.get("/api/prompts/greet", params={"label": "production"})).json()
    assert (prod["version"], prod["labels"]) == (2, ["production"])

    versions = (await api.http.get("/api/prompts/greet/versions")).json()["data"]
    assert [v["version"] for v in versions] == [2, 1]
    [summary] = (await api.http.get("/api/prompts")).json()["data"]
    assert summary["name"] == "greet" and summary["latestVersion"] == 2
    assert summary["labels"] == {"production": 2}

    with api.db.read() as conn:
        moves = audit_entries(conn, 1, action="prompt.label")
    assert [(e.actor_kind, e.target, e.details) for e in moves] == [
        ("key", "greet", {"label": "production", "from": 1, "to": 2}),
        ("key", "greet", {"label": "production", "from": None, "to": 1}),
    ]
    assert moves[0].actor_name and api.key.startswith(moves[0].actor_name)  # the prefix, not the key
    assert moves[0].client  # where the request came from


@sqlite_only
@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/api/prompts", {"template": "x"}, 400, "name"),
        ("/api/prompts", {"name": "9lives", "template": "x"}, 400, "name"),
        ("/api/prompts", {"name": "ok", "template": "{ bad }"}, 400, "template"),
        ("/api/prompts", {"name": "ok", "messages": "hi"}, 400, "messages"),
        (
            "/api/prompts",
            {"name": "ok", "template": "x", "parameters": {"temperature": "hot"}},
            400,
            "temperature",
        ),
        ("/api/prompts", {"name": "ok", "template": "x", "extra": 1}, 400, "extra"),
        ("/api/prompts", [1, 2], 400, "object"),
        ("/api/prompts/greet/labels", {"label": "production", "version": 9}, 404, "version"),
        ("/api/prompts/greet/labels", {"label": "no way", "version": 1}, 400, "label"),
        ("/api/prompts/greet/labels", {"label": "latest", "version": 1}, 400, "label"),
        ("/api/prompts/greet/labels", {"label": "prod", "version": "one"}, 400, "version"),
        ("/api/prompts/greet/labels", {"label": "prod", "version": 1, "x": 1}, 400, "x"),
        ("/api/prompts/nobody/labels", {"label": "prod", "version": 1}, 404, "nobody"),
    ],
)
async def test_bad_input_is_a_4xx_naming_the_field_and_changes_nothing(
    api: Api, path: str, body: Any, status: int, field: str
) -> None:
    await _save(api, name="greet", template="Hi {x}")
    r = await api.http.post(path, json=body)
    assert r.status_code == status, r.text
    assert field in r.json()["error"]["message"]
    with api.db.read() as conn:
        assert prompt_names(conn, 1) == {"greet"}
        assert [e.action for e in audit_entries(conn, 1)] == ["prompt.save"]
    assert (await api.http.get("/api/prompts/greet")).json()["version"] == 1


@sqlite_only
async def test_reads_answer_404_and_a_prompt_belongs_to_its_project(api: Api) -> None:
    await _save(api, name="greet", template="Hi {x}")
    assert (await api.http.get("/api/prompts/greet", params={"version": 5})).status_code == 404
    assert (await api.http.get("/api/prompts/greet", params={"label": "production"})).status_code == 404
    assert (await api.http.get("/api/prompts/greet", params={"version": "../x"})).status_code == 400
    assert (await api.http.get("/api/prompts/nobody")).status_code == 404
    other = api.new_key("elsewhere")
    assert (await api.http.get("/api/prompts/greet", headers=api.headers(other))).status_code == 404
    assert (await api.http.get("/api/prompts", headers=api.headers(other))).json() == {"data": []}
    # the same name in another project is that project's own version 1
    r = await api.http.post(
        "/api/prompts", json={"name": "greet", "template": "Yo"}, headers=api.headers(other)
    )
    assert r.json()["version"] == 1
    assert (await api.http.get("/api/prompts/greet")).json()["template"] == "Hi {x}"
    assert (await api.http.get("/api/prompts", headers={"Authorization": "Bearer nope"})).status_code == 401


@sqlite_only
async def test_a_dashboard_session_uses_the_api_with_its_csrf_token_and_writes_as_admin(api: Api) -> None:
    await _save(api, name="greet", template="Hi {x}")
    admin = await logged_in(api, "ada", "admin")
    token = csrf_of((await admin.get("/prompts")).text)
    assert (await admin.get("/api/prompts/greet")).status_code == 403  # no CSRF header
    assert (await admin.get("/api/prompts/greet", headers={"X-CSRFToken": token})).json()["version"] == 1
    r = await admin.post(
        "/api/prompts", json={"name": "greet", "template": "Hey {x}"}, headers={"X-CSRFToken": token}
    )
    assert r.status_code == 201 and r.json()["version"] == 2
    r = await admin.post(
        "/api/prompts/greet/labels", json={"label": "staging", "version": 2}, headers={"X-CSRFToken": token}
    )
    assert r.status_code == 200
    member = await logged_in(api, "max", "member")
    mtoken = csrf_of((await member.get("/prompts")).text)
    assert (await member.get("/api/prompts", headers={"X-CSRFToken": mtoken})).status_code == 200
    r = await member.post(
        "/api/prompts", json={"name": "greet", "template": "No"}, headers={"X-CSRFToken": mtoken}
    )
    assert r.status_code == 403
    with api.db.read() as conn:
        [move] = audit_entries(conn, 1, action="prompt.label")
    assert (move.actor_kind, move.actor_name) == ("user", "ada")


async def test_hostile_names_versions_and_labels_are_4xx_on_both_databases(api: Api) -> None:
    await _save(api, name="greet", template="Hi {x}")
    for path, params in (
        ("/api/prompts/a%00b", {}),
        ("/api/prompts/a%00b/versions", {}),
        ("/api/prompts/greet", {"version": "²"}),
        ("/api/prompts/greet", {"version": "1\x00"}),
        ("/api/prompts/greet", {"label": "prod\x00"}),
        ("/api/prompts/" + "n" * 300, {}),
    ):
        r = await api.http.get(path, params=params)
        assert 400 <= r.status_code < 500, (path, params, r.status_code)
    for body in ({"label": "prod", "version": "²"}, {"label": "prod\x00", "version": 1}):
        r = await api.http.post("/api/prompts/greet/labels", json=body)
        assert r.status_code == 400, (body, r.text)
    r = await api.http.post("/api/prompts/a%00b/labels", json={"label": "prod", "version": 1})
    assert r.status_code == 404, r.text
    raw = b'{"name": "ok", "template": "a\\ud800b"}'  # a lone surrogate, escaped as JSON allows
    r = await api.http.post("/api/prompts", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
