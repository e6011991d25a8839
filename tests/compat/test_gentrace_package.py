"""The real gentrace-py 0.32.2 against a real ``sightline serve``: its runs land in Sightline unchanged.

gentrace-py 0.x needs pydantic 1, so it lives in its own virtual environment (``.venv-compat/gentrace``,
made by ``scripts/compat-venvs gentrace`` from tests/compat/venvs/gentrace.txt) and runs here as a
subprocess: ``gentrace.init(api_key=KEY, host="http://HOST:PORT/api")``, its OpenAI calls going to the
local fake provider. What it recorded is then read back through Sightline's API.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.compat import gentrace_support
from tests.compat.gentrace_support import get
from tests.conftest import ServerProcess
from tests.fake_openai import FakeOpenAI

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv-compat" / "gentrace" / "bin" / "python"

# one server and one fake provider for this module
sightline, upstream = gentrace_support.sightline, gentrace_support.upstream
pytestmark = pytest.mark.skipif(
    not PYTHON.exists(),
    reason="gentrace-py 0.x's virtual environment is missing: run `scripts/compat-venvs gentrace` "
    "(scripts/setup --test makes it)",
)


def run_gentrace(script: str, server: ServerProcess, upstream: FakeOpenAI) -> dict[str, Any]:
    """Run ``script`` with gentrace-py 0.x (after ``gentrace.init`` against ``server``); its last line of
    output is JSON."""
    prelude = textwrap.dedent(
        """
        import json, os
        import gentrace
        gentrace.init(api_key=os.environ["SIGHTLINE_KEY"], host=os.environ["GENTRACE_HOST"])
        UPSTREAM = os.environ["UPSTREAM_URL"]
        """
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "SIGHTLINE_KEY": server.key,
        "GENTRACE_HOST": f"{server.url}/api",
        "UPSTREAM_URL": upstream.base_url,
        "OPENAI_API_KEY": "sk-upstream-test",
    }
    done = subprocess.run(
        [str(PYTHON), "-c", prelude + textwrap.dedent(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Error submitting" not in done.stdout + done.stderr, done.stdout + done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_the_pipeline_runner(sightline: ServerProcess, upstream: FakeOpenAI) -> None:
    user = f"user-{uuid.uuid4()}"
    out = run_gentrace(
        f"""
        pipeline = gentrace.Pipeline("compose", openai_config={{"api_key": "sk-test", "base_url": UPSTREAM}})
        runner = pipeline.start({{"userId": "{user}", "metadata": {{
            "gitSha": {{"type": "string", "value": "63ce36d"}},
            "externalServiceUrl": {{"type": "url", "url": "https://example.com", "text": "External"}}}}}})
        openai = runner.get_openai()
        first = openai.chat.completions.create(
            messages=[{{"role": "user", "contentTemplate": "Hello! My name is {{{{ name }}}}.",
                       "contentInputs": {{"name": "Vivek"}}}}],
            model="gpt-4o-mini",
            gentrace={{"metadata": {{"promptId": {{"type": "string", "value": "MzY0MzQ0"}}}}}},
        )
        def retrieve(query):
            return ["doc-1", "doc-2"]
        runner.measure(retrieve, query="maine", step_info={{"provider": "vector", "invocation": "retrieve"}})
        runner.checkpoint({{"invocation": "format", "inputs": {{"docs": 2}}, "outputs": {{"text": "ok"}}}})
        streamed = "".join(
            chunk.choices[0].delta.content or ""
            for chunk in openai.chat.completions.create(
                messages=[{{"role": "user", "content": "Stream please"}}], model="gpt-4o-mini", stream=True,
                gentrace={{"metadata": {{"promptId": {{"type": "string", "value": "SGVsbG8g"}}}}}},
            )
            if chunk.choices
        )
        result = runner.submit(wait_for_server=True)
        first = first.choices[0].message.content
        out = {{"result": result, "runId": runner.get_id(), "first": first, "streamed": streamed}}
        print(json.dumps(out))
        """,
        sightline,
        upstream,
    )
    run_id = out["runId"]
    assert out["result"] == {"pipelineRunId": run_id}
    assert [r["body"]["messages"][0]["content"] for r in upstream.requests()[-2:]] == [
        "Hello! My name is Vivek.",
        "Stream please",
    ]

    run = get(sightline, f"/api/runs/{run_id}")
    assert run["pipelineSlug"] == "compose" and run["userId"] == user
    assert run["metadata"]["gitSha"] == {"type": "string", "value": "63ce36d"}
    assert run["metadata"]["externalServiceUrl"]["url"] == "https://example.com"
    assert run["metadata"]["promptId"] == {"type": "string", "value": "SGVsbG8g"}  # the latest write wins
    kinds = [(s["kind"], s.get("name")) for s in run["steps"]]
    assert kinds == [("generation", None), ("step", "retrieve"), ("step", "format"), ("generation", None)]
    chat, retrieve, checkpoint, stream = run["steps"]
    assert chat["template"]["chat"] == [{"role": "user", "content": "Hello! My name is {{ name }}."}]
    assert chat["template"]["params"] == {"name": "Vivek"}
    assert chat["input"]["content"][0]["content"] == "Hello! My name is Vivek."
    assert chat["output"]["content"] == out["first"]
    assert chat["usage"]["totalTokens"] > 0 and chat["usage"]["cost"] > 0
    assert retrieve["inputs"] == {"query": "maine"} and retrieve["outputs"] == {"value": ["doc-1", "doc-2"]}
    assert retrieve["providerName"] == "vector"
    assert checkpoint["inputs"] == {"docs": 2} and checkpoint["outputs"] == {"text": "ok"}
    assert stream["output"]["content"] == out["streamed"] and stream["parameters"]["stream"] is True

    by_user = get(sightline, "/api/generations", userId=user)["data"]
    assert {g["id"] for g in by_user} == {chat["id"], stream["id"]}
    assert (
        len(get(sightline, "/api/generations", **{"metadata.gitSha": "63ce36d", "runId": run_id})["data"])
        == 2
    )
    assert [r["id"] for r in get(sightline, "/api/runs", userId=user)["data"]] == [run_id]


def test_the_simple_sdk(sightline: ServerProcess, upstream: FakeOpenAI) -> None:
    user = f"user-{uuid.uuid4()}"
    out = run_gentrace(
        f"""
        client = gentrace.OpenAI(api_key="sk-test", base_url=UPSTREAM)
        answer = client.chat.completions.create(
            messages=[{{"role": "user", "contentTemplate": "Write a brief essay about {{{{ state }}}}.",
                       "contentInputs": {{"state": "Maine"}}}}],
            model="gpt-3.5-turbo",
            pipeline_slug="simple-pipeline",
            gentrace={{"userId": "{user}", "metadata": {{"variant": {{"type": "string", "value": "b"}}}}}},
        )
        for chunk in client.chat.completions.create(
            messages=[{{"role": "user", "content": "Hello!"}}], model="gpt-3.5-turbo", stream=True,
            pipeline_slug="simple-pipeline", gentrace={{"userId": "{user}"}},
        ):
            pass
        gentrace.flush()
        print(json.dumps({{"runId": answer.pipelineRunId}}))
        """,
        sightline,
        upstream,
    )
    runs = get(sightline, "/api/runs", userId=user)["data"]
    assert len(runs) == 2 and {r["pipelineSlug"] for r in runs} == {"simple-pipeline"}
    assert out["runId"] in {r["id"] for r in runs}
    essay = get(sightline, f"/api/runs/{out['runId']}")
    assert essay["metadata"]["variant"] == {"type": "string", "value": "b"}
    (gen,) = essay["steps"]
    assert gen["input"]["content"] == [{"role": "user", "content": "Write a brief essay about Maine."}]
    assert gen["template"]["params"] == {"state": "Maine"} and gen["model"]["id"] == "gpt-3.5-turbo"
    by_user = get(sightline, "/api/generations", userId=user)["data"]
    assert len(by_user) == 2
    assert get(sightline, "/api/generations", **{"metadata.variant": "b"})["data"][0]["id"] == gen["id"]
