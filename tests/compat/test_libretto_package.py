"""The real libretto-openai 1.1.3 against a real ``sightline serve``: its events, feedback and chain results
land in Sightline unchanged, with ``LIBRETTO_API_PREFIX`` pointed at ``/compat/libretto``.

libretto-openai pulls in Presidio, so it lives in its own virtual environment (``.venv-compat/libretto``,
made by ``scripts/compat-venvs libretto`` from tests/compat/venvs/libretto.txt) and runs as a subprocess;
its OpenAI calls go to the local fake provider. What it sent is read back through Sightline's API.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.compat import gentrace_support
from tests.compat.gentrace_support import get
from tests.conftest import ServerProcess
from tests.fake_openai import FakeOpenAI

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv-compat" / "libretto" / "bin" / "python"

sightline, upstream = gentrace_support.sightline, gentrace_support.upstream
pytestmark = pytest.mark.skipif(
    not PYTHON.exists(),
    reason="libretto-openai's virtual environment is missing: run `scripts/compat-venvs libretto` "
    "(scripts/setup --test makes it)",
)


def run_libretto(
    script: str, server: ServerProcess, upstream: FakeOpenAI, key: str | None = None
) -> dict[str, Any]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "SIGHTLINE_KEY": key or server.key,
        "LIBRETTO_API_PREFIX": f"{server.url}/compat/libretto",
        "UPSTREAM_URL": upstream.base_url,
        "OPENAI_API_KEY": "sk-upstream-test",
    }
    done = subprocess.run(
        [str(PYTHON), "-c", textwrap.dedent(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _wait(server: ServerProcess, path: str, ready: Any, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = get(server, path)
        if ready(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


SCRIPT = """
import json, os, time, uuid
from libretto_openai import Client, LibrettoConfig, LibrettoCreateParams, TemplateChat, TemplateString

client = Client(api_key=os.environ["OPENAI_API_KEY"], base_url=os.environ["UPSTREAM_URL"],
                libretto=LibrettoConfig(api_key=os.environ["SIGHTLINE_KEY"]))
chain = str(uuid.uuid4())
chat = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=TemplateChat([{"role": "user", "content": "Show me an emoji that matches the sport: {sport}"}],
                          {"sport": "soccer"}),
    temperature=0.3,
    libretto=LibrettoCreateParams(prompt_template_name="sport-emoji", chain_id=chain, chat_id="chat-7"),
)
key = chat.model_extra.get("libretto_feedback_key")
client.send_feedback(feedback_key=key, better_response="⚽", rating=0.2)
text = client.completions.create(
    model="gpt-3.5-turbo-instruct",
    prompt=TemplateString("Welcome the user to {place}!", {"place": "Sightline"}),
    libretto=LibrettoCreateParams(prompt_template_name="welcome", chain_id=chain),
)
client.update_chain(chain_id=chain, result="all done")
time.sleep(3)  # its events go from a background thread
answer = {"chain": chain, "key": key, "chat": chat.choices[0].message.content, "text": text.choices[0].text}
print(json.dumps(answer))
"""


def test_the_real_client_records_events_feedback_and_chains(
    sightline: ServerProcess, upstream: FakeOpenAI
) -> None:
    done = run_libretto(SCRIPT, sightline, upstream)
    chain = done["chain"]
    found = _wait(
        sightline,
        "/api/generations",
        lambda f: len(f["data"]) >= 2 and any(g.get("feedback") for g in f["data"]),
        timeout=15,
    )
    gens = [g for g in get(sightline, "/api/generations", runId=chain)["data"]]
    assert {g["template"]["name"] for g in gens} == {"sport-emoji", "welcome"}, found
    emoji = next(g for g in gens if g["template"]["name"] == "sport-emoji")
    full = get(sightline, f"/api/generations/{emoji['id']}")
    assert full["template"]["params"] == {"sport": "soccer"} and full["chatId"] == "chat-7"
    assert full["input"]["content"] == [
        {"role": "user", "content": "Show me an emoji that matches the sport: soccer"}
    ]
    assert full["output"]["content"] == done["chat"] and full["parameters"]["temperature"] == 0.3
    assert full["usage"]["promptTokens"] > 0 and full["usage"]["cost"] > 0
    assert full["feedback"]["score"] == 0.2 and full["feedback"]["betterResponse"] == "⚽"
    welcome = get(
        sightline, f"/api/generations/{next(g for g in gens if g['template']['name'] == 'welcome')['id']}"
    )
    assert (
        welcome["input"]["content"] == "Welcome the user to Sightline!"
        and welcome["output"]["content"] == done["text"]
    )
    run = _wait(sightline, f"/api/runs/{chain}", lambda r: r.get("output") == "all done")
    assert run["output"] == "all done"


def test_a_wrong_key_stores_nothing(sightline: ServerProcess, upstream: FakeOpenAI) -> None:
    before = len(get(sightline, "/api/generations", **{"template.name": "lost"})["data"])
    script = SCRIPT.replace('"sport-emoji"', '"lost"').replace('"welcome"', '"lost"')
    run_libretto(script, sightline, upstream, key="sl_" + uuid.uuid4().hex)
    assert len(get(sightline, "/api/generations", **{"template.name": "lost"})["data"]) == before
