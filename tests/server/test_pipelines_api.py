"""Pipelines through a real ``sightline serve`` with a local upstream: functions sync, saving, the two AI-Eye
endpoints with an API key and with a dashboard session's CSRF token, a run's steps read back, failures."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import sightline_command, start_server, stop_server
from tests.fake_openai import FakeOpenAI

PASSWORD = "a-long-password-1"

CUSTOM = '''
from sightline.pipelines.convert import returns


@returns("str")
def shout(text: str) -> str:
    """Upper case, and an exclamation mark."""
    return text.upper() + "!"


def hang(x):
    while True:
        pass


def fail(x):
    raise ValueError("no good")
'''


@dataclass
class Served:
    url: str
    key: str
    functions: Path
    upstream: FakeOpenAI
    cli: Any

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("pipelines")
    functions = tmp / "functions"
    functions.mkdir()
    (functions / "custom_tools.py").write_text(CUSTOM)
    upstream = FakeOpenAI()
    database_url = f"sqlite:///{tmp / 'server.db'}"
    env = {
        **os.environ,
        "SIGHTLINE_DATABASE_URL": database_url,
        "SIGHTLINE_UPSTREAM_URL": upstream.base_url,
        "SIGHTLINE_UPSTREAM_API_KEY": "sk-test",
        "SIGHTLINE_FUNCTIONS_DIR": str(functions),
        "SIGHTLINE_PIPELINE_FUNCTION_TIMEOUT": "1",
    }

    def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*sightline_command(), *args], env=env, capture_output=True, text=True, timeout=60, check=check
        )

    key = cli("token", "create", "--project", "demo", "--environment", "dev").stdout.strip().splitlines()[-1]
    cli("create-admin", "--username", "admin", "--password", PASSWORD)
    cli("create-admin", "--username", "member", "--password", PASSWORD, "--role", "member")
    cli("functions", "sync")
    process, url = start_server(database_url, tmp / "server.log", env=env)
    try:
        yield Served(url, key, functions, upstream, cli)
    finally:
        upstream.close()
        stop_server(process)


def _session(served: Served, username: str) -> tuple[httpx.Client, str]:
    http = httpx.Client(base_url=served.url, timeout=30)
    form = http.get("/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf
    r = http.post("/login", data={"username": username, "password": PASSWORD, "csrf": csrf.group(1)})
    assert r.status_code == 303, r.text
    page = http.get("/prompts").text
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token
    return http, token.group(1)


def _prompt(http: httpx.Client, name: str, template: str, model: str = "gpt-4o-mini") -> None:
    r = http.post("/api/prompts", json={"name": name, "template": template, "model": model})
    assert r.status_code == 201, r.text


def test_the_documents_pipeline_api_with_a_key_and_with_a_session(served: Served) -> None:
    with served.http() as http:
        _prompt(http, "prompt_buddy", "Hey {buddy}")
        r = http.post("/api/pipelines", json={"name": "my_pipeline", "expression": "prompt_buddy(buddy=s)"})
        assert r.status_code == 201, r.text
        created = r.json()
        assert created["name"] == "my_pipeline" and created["args"] == ["s"]
        r = http.get("/api/pipeline/args", params={"pipeline_name": "my_pipeline"})
        assert r.json() == {"success": True, "response": ["s"]}
        r = http.post("/api/pipeline/call", json={"pipeline_id": created["id"], "args": {"s": "abc"}})
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["success"] is True and answer["response"] == "Fake reply to: Hey abc"
        sent = served.upstream.requests()[-1]["body"]
        assert sent["model"] == "gpt-4o-mini" and sent["messages"] == [{"role": "user", "content": "Hey abc"}]
        # The run: one step, the prompt's generation, recorded under the prompt's name and version.
        run = _run(http, answer["run_id"], steps=1)
        assert run["pipelineSlug"] == "my_pipeline" and run["status"] == "ok"
        assert run["output"] == "Fake reply to: Hey abc"
        [step] = run["steps"]
        assert step["kind"] == "generation" and step["template"]["name"] == "prompt_buddy"
        assert step["template"]["params"] == {"buddy": "abc"}
        # The trailing slash, a name instead of an id.
        r = http.post("/api/pipeline/call/", json={"pipeline_name": "my_pipeline", "args": {"s": "x"}})
        assert r.json()["response"] == "Fake reply to: Hey x"
    # A dashboard session with its CSRF token, as the document's curl examples send it.
    session, token = _session(served, "member")
    with closing(session):
        r = session.get("/api/pipeline/args", params={"pipeline_name": "my_pipeline"})
        assert r.status_code == 403 and r.json()["success"] is False  # no X-CSRFToken
        r = session.get(
            "/api/pipeline/args", params={"pipeline_name": "my_pipeline"}, headers={"X-CSRFToken": token}
        )
        assert r.json() == {"success": True, "response": ["s"]}
        r = session.post(
            "/api/pipeline/call",
            json={"pipeline_id": created["id"], "args": {"s": "abc"}},
            headers={"X-CSRFToken": token},
        )
        assert r.status_code == 200 and r.json()["response"] == "Fake reply to: Hey abc", r.text


def _run(http: httpx.Client, run_id: str, steps: int) -> dict[str, Any]:
    # The generations are recorded just after the answer: wait for them.
    deadline = time.monotonic() + 10
    while True:
        run = http.get(f"/api/runs/{run_id}").json()
        if len(run.get("steps", [])) >= steps or time.monotonic() > deadline:
            return dict(run)
        time.sleep(0.1)


def test_prompts_and_functions_chain_with_their_steps_in_order(served: Served) -> None:
    with served.http() as http:
        _prompt(http, "p_a", "A {a}")
        _prompt(http, "p_b", "B {b}")
        expression = "shout(builtin_concat(p_a(x), p_b(y)))"
        r = http.post("/api/pipelines", json={"name": "chain", "expression": expression})
        assert r.status_code == 201, r.text
        assert r.json()["args"] == ["x", "y"]
        r = http.post("/api/pipeline/call", json={"pipeline_name": "chain", "args": {"x": "1", "y": "2"}})
        assert r.status_code == 200, r.text
        assert r.json()["response"] == "FAKE REPLY TO: A 1\nFAKE REPLY TO: B 2!"
        run = _run(http, r.json()["run_id"], steps=4)
        kinds = [(s["kind"], s.get("name") or s["template"]["name"]) for s in run["steps"]]
        assert sorted(kinds[:2]) == [("generation", "p_a"), ("generation", "p_b")]  # side by side
        assert kinds[2:] == [("step", "builtin_concat"), ("step", "shout")]
        concat = run["steps"][2]
        assert concat["inputs"] == {"a": "Fake reply to: A 1", "b": "Fake reply to: B 2"}
        assert concat["outputs"] == "Fake reply to: A 1\nFake reply to: B 2"
        assert concat["startedAt"] and concat["endedAt"]
        # Constants are arguments too; a bare name returns its argument.
        r = http.post("/api/pipelines", json={"name": "echo", "expression": "foo"})
        assert r.json()["args"] == ["foo"]
        r = http.post("/api/pipeline/call", json={"pipeline_name": "echo", "args": {"foo": "abc"}})
        assert r.json() == {"success": True, "response": "abc", "run_id": r.json()["run_id"]}


@pytest.mark.parametrize(
    ("expression", "message", "column"),
    [
        ("", "empty", 1),
        ("x(", "not a valid expression", 2),
        ("x.y()", "only a prompt or function named plainly", 1),
        ("__import__('os')", "a name starts with a letter", 1),
        ("upper(nope(x))", "'nope' is not a prompt or a registered function", 7),
        ("upper(x, y)", "takes at most 1 argument(s)", 1),
    ],
)
def test_a_refused_expression_is_a_400_with_its_place(
    served: Served, expression: str, message: str, column: int
) -> None:
    with served.http() as http:
        r = http.post("/api/pipelines", json={"name": "bad", "expression": expression})
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert message in error["message"] and error["column"] == column and error["line"] == 1
        assert http.post("/api/pipelines/validate", json={"expression": expression}).status_code == 400
        assert all(p["name"] != "bad" for p in http.get("/api/pipelines").json()["data"])


def test_failures_are_4xx_and_leave_a_run_with_the_error(served: Served) -> None:
    with served.http() as http:
        for name, expression in [("slow", "hang(x)"), ("breaks", "fail(x)")]:
            assert (
                http.post("/api/pipelines", json={"name": name, "expression": expression}).status_code == 201
            )
        r = http.post("/api/pipeline/call", json={"pipeline_name": "slow", "args": {"x": 1}})
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["success"] is False and "did not return within 1 s" in body["error"]["message"]
        assert "pipeline_function_timeout" in body["error"]["message"]
        run = _run(http, body["run_id"], steps=1)
        assert run["status"] == "error" and run["steps"][0]["status"] == "error"
        assert http.get("/healthz").status_code == 200  # the hung function did not take the server down
        r = http.post("/api/pipeline/call", json={"pipeline_name": "breaks", "args": {"x": 1}})
        assert r.status_code == 422 and "ValueError: no good" in r.json()["error"]["message"]
        for body, status, field in [
            ({"pipeline_name": "nothing", "args": {}}, 404, "pipeline_name"),
            ({"pipeline_id": 999999, "args": {}}, 404, "pipeline_id"),
            ({"pipeline_name": "slow", "args": {}}, 400, "args"),
            ({"pipeline_name": "slow", "args": {"x": 1, "z": 2}}, 400, "args"),
            ({"pipeline_name": "slow", "args": [1]}, 400, "args"),
            ({"pipeline_name": "slow", "args": {"x": 1}, "extra": 1}, 400, "extra"),
        ]:
            r = http.post("/api/pipeline/call", json=body)
            assert r.status_code == status and r.json()["error"]["field"] == field, (body, r.text)
        # A provider error ends the run with its message.
        _prompt(http, "broken", "Say {x}", model="error-429")
        http.post("/api/pipelines", json={"name": "rate_limited", "expression": "broken(x)"})
        r = http.post("/api/pipeline/call", json={"pipeline_name": "rate_limited", "args": {"x": "a"}})
        assert r.status_code == 422 and r.json()["error"]["type"] == "step_failed", r.text


def test_sync_counts_what_appears_and_vanishes_and_lists_import_errors(served: Served) -> None:
    admin, token = _session(served, "admin")
    with closing(admin), served.http() as http:
        headers = {"X-CSRFToken": token}
        r = admin.post("/api/functions/sync", headers=headers)
        assert r.status_code == 200 and (r.json()["added"], r.json()["deleted"]) == (0, 0)
        (served.functions / "custom_more.py").write_text("def twice(x: int) -> int:\n    return 2 * x\n")
        (served.functions / "custom_broken.py").write_text("import nowhere_to_be_found\n")
        r = admin.post("/api/functions/sync", headers=headers).json()
        assert (r["added"], r["deleted"]) == (1, 0) and "twice" in r["functions"]
        assert r["errors"] == [
            {
                "file": "custom_broken.py",
                "message": "ModuleNotFoundError: No module named 'nowhere_to_be_found' (line 1)",
            }
        ]
        listed = http.get("/api/functions").json()
        assert {"twice", "shout", "upper"} <= {f["name"] for f in listed["data"]}
        assert listed["lastSync"]["errors"][0]["file"] == "custom_broken.py"
        (served.functions / "custom_more.py").unlink()
        (served.functions / "custom_broken.py").unlink()
        r = admin.post("/api/functions/sync", headers=headers).json()
        assert (r["added"], r["deleted"], r["errors"]) == (0, 1, [])
        # Members and API keys may not sync; the CLI may.
        assert http.post("/api/functions/sync").status_code == 403
    member, mtoken = _session(served, "member")
    with closing(member):
        assert member.post("/api/functions/sync", headers={"X-CSRFToken": mtoken}).status_code == 403
    done = served.cli("functions", "sync")
    assert "0 added, 0 deleted" in done.stdout


def test_prompts_and_functions_share_one_namespace(served: Served) -> None:
    with served.http() as http:
        r = http.post("/api/prompts", json={"name": "upper", "template": "Hi {x}"})
        assert r.status_code == 409 and "registered function" in r.json()["error"]["message"]
