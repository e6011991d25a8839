"""``sightline.compat.libretto_openai``: libretto-openai's documented API over the Sightline SDK, and every
Python example of the libretto document run with only its import changed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sightline.compat.libretto_openai import (
    AsyncClient,
    Client,
    LibrettoConfig,
    LibrettoCreateParams,
    TemplateChat,
    TemplateText,
)
from sightline.sdk import flush
from tests.compat import gentrace_support
from tests.compat.gentrace_support import get
from tests.conftest import ServerProcess
from tests.fake_openai import FakeOpenAI

SEED = Path(__file__).resolve().parents[3] / "shared" / "seeds" / "002_f5e5d06cdd66ef03.txt"
sightline, upstream = gentrace_support.sightline, gentrace_support.upstream


@pytest.fixture
def env(sightline: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SIGHTLINE_SERVER_URL", sightline.url)
    monkeypatch.delenv("SIGHTLINE_API_KEY", raising=False)
    monkeypatch.setenv("LIBRETTO_API_KEY", sightline.key)
    yield


def _wait(server: ServerProcess, path: str, ready: Any, **params: str) -> Any:
    deadline = time.monotonic() + 15
    while True:
        found = get(server, path, **params)
        if ready(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_create_with_libretto_params_feedback_and_chains(
    env: None, sightline: ServerProcess, upstream: FakeOpenAI
) -> None:
    client = Client(api_key="sk-test", base_url=upstream.base_url)  # the key from LIBRETTO_API_KEY
    chain, event = uuid.uuid4(), uuid.uuid4()
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=TemplateChat([{"role": "user", "content": "An emoji for {sport}"}], {"sport": "golf"}),
        libretto=LibrettoCreateParams(prompt_template_name="module-emoji", chain_id=chain, event_id=event),
    )
    key = completion.model_extra["libretto_feedback_key"]
    client.send_feedback(feedback_key=key, better_response="⛳", rating=0.4)
    # The inline form: raw messages, the template and parameters given apart; a custom feedback key.
    inline = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "An emoji for tennis"}],
        libretto=LibrettoCreateParams(
            prompt_template_name="module-emoji",
            template_params={"sport": "tennis"},
            template_chat=[{"role": "user", "content": "An emoji for {sport}"}],
            chain_id=chain,
            feedback_key="my-own-key",
        ),
    )
    assert inline.model_extra["libretto_feedback_key"] == "my-own-key"
    client.send_feedback(feedback_key="my-own-key", rating=1.0)
    text = client.completions.create(
        model="gpt-3.5-turbo-instruct",
        prompt=TemplateText("Welcome to {place}", {"place": "Sightline"}),
        libretto=LibrettoCreateParams(prompt_template_name="module-welcome"),
    )
    assert text.model_extra["libretto_feedback_key"]
    client.update_chain(chain, "finished")
    flush(10)
    got = _wait(sightline, f"/api/generations/{event}", lambda g: "feedback" in g)
    assert got["template"]["params"] == {"sport": "golf"} and got["runId"] == str(chain)
    assert got["feedback"]["score"] == 0.4 and got["feedback"]["betterResponse"] == "⛳"
    found = get(sightline, "/api/generations", runId=str(chain))["data"]
    assert len(found) == 2
    other = get(sightline, f"/api/generations/{next(g['id'] for g in found if g['id'] != str(event))}")
    assert other["template"]["params"] == {"sport": "tennis"} and other["feedback"]["score"] == 1.0
    assert get(sightline, f"/api/runs/{chain}")["output"] == "finished"
    assert get(sightline, "/api/generations", **{"template.name": "module-welcome"})["data"]


def test_unnamed_prompts_are_not_recorded_unless_allowed(
    env: None, sightline: ServerProcess, upstream: FakeOpenAI
) -> None:
    marker = f"unnamed {uuid.uuid4()}"
    quiet = Client(api_key="sk-test", base_url=upstream.base_url)
    quiet.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": marker}])
    loud = Client(
        api_key="sk-test", base_url=upstream.base_url, libretto=LibrettoConfig(allow_unnamed_prompts=True)
    )
    loud.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": marker + "!"}])
    flush(10)
    texts = [json.dumps(g["input"]) for g in get(sightline, "/api/generations", limit="200")["data"]]
    assert any(json.dumps(marker + "!") in t for t in texts)
    assert not any(json.dumps(marker) in t for t in texts)


async def test_the_async_client(env: None, sightline: ServerProcess, upstream: FakeOpenAI) -> None:
    client = AsyncClient(api_key="sk-test", base_url=upstream.base_url)
    done = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        libretto=LibrettoCreateParams(prompt_template_name="module-async"),
    )
    assert done.model_extra["libretto_feedback_key"]
    flush(10)
    assert _wait(sightline, "/api/generations", lambda f: f["data"], **{"template.name": "module-async"})[
        "data"
    ]


def _seed_examples() -> list[str]:
    """The document's complete Python examples (``from libretto_openai import (`` ... the create call)."""
    lines = SEED.read_text().splitlines()
    examples = []
    for i, line in enumerate(lines):
        if line.startswith("from libretto_openai import ("):
            code: list[str] = []
            for follow in lines[i:]:
                code.append(follow)
                text = "\n".join(code)
                if follow == ")" and text.count("(") == text.count(")") and "create(" in text:
                    break
            examples.append("\n".join(code))
    return examples


def test_every_example_of_the_document_runs_with_only_its_import_changed(
    sightline: ServerProcess, upstream: FakeOpenAI
) -> None:
    examples = _seed_examples()
    assert len(examples) == 2
    for example in examples:
        # Only the import changes (the document's second example uses TemplateText without importing it:
        # the changed import names it too).
        changed = re.sub(
            r"from libretto_openai import \(",
            "from sightline.compat.libretto_openai import (\nTemplateText,",
            example,
        )
        changed = changed.replace("<OpenAI API Key>", "sk-test").replace("<Libretto API Key>", sightline.key)
        env = {
            **os.environ,
            "OPENAI_BASE_URL": upstream.base_url,
            "SIGHTLINE_SERVER_URL": sightline.url,
        }
        done = subprocess.run(
            [sys.executable, "-c", changed], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr[-2000:]
    found = _wait(
        sightline, "/api/generations", lambda f: len(f["data"]) >= 2, **{"template.name": "sport-emoji"}
    )
    models = sorted(g["model"]["id"] for g in found["data"])
    assert models == ["gpt-3.5-turbo", "text-davinci-003"]
    for g in found["data"]:
        full = get(sightline, f"/api/generations/{g['id']}")
        assert full["template"]["params"] == {"sport": "soccer"}
