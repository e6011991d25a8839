"""``sightline.compat.gentrace``: gentrace-py 0.x's API over the Sightline SDK, against a real server.

Each test records through the module (the real ``openai`` client, the fake provider) and reads the
records back through Sightline's API.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from sightline.compat import gentrace
from tests.compat import gentrace_support
from tests.compat.gentrace_support import get
from tests.conftest import ServerProcess
from tests.fake_openai import FakeOpenAI

sightline, upstream = gentrace_support.sightline, gentrace_support.upstream  # one each for this module

HELLO = [
    {"role": "user", "contentTemplate": "Hello! My name is {{ name }}.", "contentInputs": {"name": "Vivek"}}
]


@pytest.fixture
def setup(sightline: ServerProcess, upstream: FakeOpenAI) -> Iterator[dict[str, Any]]:
    """``gentrace.init`` against the server; the openai arguments of the fake provider."""
    gentrace.init(api_key=sightline.key, host=f"{sightline.url}/api")
    yield {"api_key": "sk-test", "base_url": upstream.base_url}
    gentrace.flush()
    gentrace.deinit()


def test_the_advanced_sdk(setup: dict[str, Any], sightline: ServerProcess) -> None:
    user = str(uuid.uuid4())
    pipeline = gentrace.Pipeline("compose", openai_config=setup)
    runner = pipeline.start(
        {
            "userId": user,
            "metadata": {
                "gitSha": {"type": "string", "value": "63ce36d"},
                "externalServiceUrl": {"type": "url", "url": "https://example.com", "text": "External"},
            },
        }
    )
    openai = runner.get_openai()
    assert runner.openai is openai
    first = openai.chat.completions.create(messages=HELLO, model="gpt-4o-mini")
    assert first.choices[0].message.content
    docs = runner.measure(lambda query: ["doc-1"], query="maine", step_info={"invocation": "retrieve"})
    assert docs == ["doc-1"]
    runner.checkpoint({"invocation": "format", "inputs": {"docs": 1}, "outputs": {"text": "ok"}})
    # openai 0.x's spelling, with step metadata that merges into the run
    stream = openai.ChatCompletion.create(
        messages=[{"role": "user", "content": "What's the capital of Maine?"}],
        model="gpt-4o-mini",
        stream=True,
        gentrace={"metadata": {"promptId": {"type": "string", "value": "SGVsbG8g"}}},
    )
    answer = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert runner.submit(wait_for_server=True) == {"pipelineRunId": runner.get_id()}

    run = get(sightline, f"/api/runs/{runner.get_id()}")
    assert run["pipelineSlug"] == "compose" and run["userId"] == user and run["status"] == "ok"
    assert run["metadata"]["gitSha"]["value"] == "63ce36d"
    assert run["metadata"]["promptId"]["value"] == "SGVsbG8g"
    assert [(s["kind"], s.get("name")) for s in run["steps"]] == [
        ("generation", None),
        ("step", "retrieve"),
        ("step", "format"),
        ("generation", None),
    ]
    chat, retrieve, checkpoint, streamed = run["steps"]
    assert chat["template"]["chat"][0]["content"] == "Hello! My name is {{ name }}."
    assert chat["template"]["params"] == {"name": "Vivek"}
    assert chat["input"]["content"][0]["content"] == "Hello! My name is Vivek."
    assert retrieve["inputs"] == {"query": "maine"} and retrieve["outputs"] == {"value": ["doc-1"]}
    assert checkpoint["outputs"] == {"text": "ok"} and checkpoint["startedAt"] >= retrieve["endedAt"]
    assert streamed["output"]["content"] == answer and streamed["usage"]["totalTokens"] > 0
    by_user = get(sightline, "/api/generations", userId=user)["data"]
    assert {g["id"] for g in by_user} == {chat["id"], streamed["id"]}
    assert len(get(sightline, "/api/generations", **{"metadata.promptId": "SGVsbG8g"})["data"]) == 2


def test_the_simple_sdk(setup: dict[str, Any], sightline: ServerProcess) -> None:
    user = str(uuid.uuid4())
    client = gentrace.OpenAI(**setup)
    answer = client.chat.completions.create(
        messages=HELLO,
        model="gpt-3.5-turbo",
        pipeline_slug="example-completion",
        gentrace={"userId": user, "metadata": {"variant": {"type": "string", "value": "b"}}},
    )
    completion = client.completions.create(
        model="gpt-3.5-turbo-instruct",
        prompt_template="An essay about {{ state }}",
        prompt_inputs={"state": "Maine"},
        pipeline_slug="example-completion",
        gentrace={"userId": user},
    )
    assert completion.choices[0].text
    gentrace.flush()
    runs = get(sightline, "/api/runs", userId=user)["data"]
    assert len(runs) == 2 and {r["pipelineSlug"] for r in runs} == {"example-completion"}
    run = get(sightline, f"/api/runs/{answer.pipelineRunId}")
    assert run["userId"] == user and run["metadata"]["variant"]["value"] == "b"
    (gen,) = run["steps"]
    assert gen["input"]["content"] == [{"role": "user", "content": "Hello! My name is Vivek."}]
    texts = [
        g
        for g in get(sightline, "/api/generations", userId=user)["data"]
        if g.get("template", {}).get("text")
    ]
    assert texts[0]["template"]["text"] == "An essay about {{ state }}"
    assert texts[0]["input"]["content"] == "An essay about Maine"


def test_a_step_cannot_set_the_user(setup: dict[str, Any], upstream: FakeOpenAI) -> None:
    runner = gentrace.Pipeline("compose", openai_config=setup).start()
    openai = runner.get_openai()
    sent = len(upstream.requests())
    with pytest.raises(gentrace.UserIdOnStepError) as caught:
        openai.chat.completions.create(
            messages=[{"role": "user", "content": "Hello! My name is Vivek."}],
            model="gpt-3.5-turbo",
            gentrace={"userId": "TWFuIGlzIGRpc3Rpbmd1aXNoZW"},
        )
    assert "cannot be specified on a single step within a multi-step pipeline" in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert len(upstream.requests()) == sent  # the call was not made
    with pytest.raises(gentrace.UserIdOnStepError):
        runner.measure(lambda: 1, step_info={"context": {"userId": "someone"}})
    with pytest.raises(gentrace.UserIdOnStepError):
        runner.checkpoint({"inputs": {}, "outputs": {}, "context": {"userId": "someone"}})


@pytest.mark.parametrize(
    ("metadata", "key"),
    [
        ({"gitSha": "63ce36d"}, "gitSha"),  # no "type" key
        ({"gitSha": {"type": "string"}}, "gitSha"),  # no value
        ({"link": {"type": "url", "url": "https://example.com"}}, "link"),  # no text
        ({"gitSha": {"type": "sha", "value": "x"}}, "gitSha"),
    ],
)
def test_malformed_metadata_is_refused(setup: dict[str, Any], metadata: dict[str, Any], key: str) -> None:
    pipeline = gentrace.Pipeline("compose", openai_config=setup)
    with pytest.raises(gentrace.MetadataError) as caught:
        pipeline.start({"metadata": metadata})
    assert caught.value.field == f"pipeline.start.metadata.{key}"
    openai = pipeline.start().get_openai()
    with pytest.raises(gentrace.MetadataError):
        openai.chat.completions.create(messages=HELLO, model="gpt-4o-mini", gentrace={"metadata": metadata})


def test_init_takes_the_host_as_gentrace_does() -> None:
    with pytest.raises(ValueError, match='must end in "/api"'):
        gentrace.init(api_key="k", host="http://127.0.0.1:8000/v1")
    with pytest.raises(ValueError, match="API key"):
        gentrace.init(api_key="", host="http://127.0.0.1:8000/api")


def test_server_from_the_environment_and_a_flush_at_exit(
    sightline: ServerProcess, upstream: FakeOpenAI
) -> None:
    """Without ``init(host=)`` the server is SIGHTLINE_SERVER_URL; what was recorded is sent at exit."""
    user = str(uuid.uuid4())
    script = f"""
        from sightline.compat import gentrace
        pipeline = gentrace.Pipeline("exit-pipeline", openai_config={{"base_url": "{upstream.base_url}"}})
        runner = pipeline.start({{"userId": "{user}"}})
        runner.get_openai().chat.completions.create(messages=[{{"role": "user", "content": "hi"}}], model="m")
        runner.submit()
    """
    env = {
        **os.environ,
        "SIGHTLINE_SERVER_URL": sightline.url,
        "GENTRACE_API_KEY": sightline.key,
        "OPENAI_API_KEY": "sk-test",
    }
    subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env, check=True, timeout=60)
    (run,) = get(sightline, "/api/runs", userId=user)["data"]
    assert run["pipelineSlug"] == "exit-pipeline" and run["stepCount"] == 1
