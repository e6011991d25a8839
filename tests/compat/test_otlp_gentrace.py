"""The real gentrace-py 1.x (OpenTelemetry-based) against a real ``sightline serve``: ``init(base_url=
"http://HOST:PORT/api")`` exports its spans to ``/api/otel/v1/traces`` with the key as its Bearer token;
an interaction becomes a run (its pipeline id as the slug), its traced functions steps with their
arguments and outputs (gentrace's ``gentrace.fn.args``/``gentrace.fn.output`` events)."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from tests.compat import gentrace_support
from tests.compat.gentrace_support import get
from tests.conftest import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv-compat" / "gentrace1" / "bin" / "python"

sightline = gentrace_support.sightline
pytestmark = pytest.mark.skipif(
    not PYTHON.exists(),
    reason="gentrace-py 1.x's virtual environment is missing: run `scripts/compat-venvs gentrace1` "
    "(scripts/setup --test makes it)",
)

SCRIPT = """
import json, os, uuid
from gentrace import init, interaction, traced
from opentelemetry import trace

init(api_key=os.environ["SIGHTLINE_KEY"], base_url=os.environ["SIGHTLINE_URL"] + "/api")
PIPELINE = str(uuid.uuid4())

@traced(name="retrieve")
def retrieve(query):
    return ["doc-1", "doc-2"]

@interaction(pipeline_id=PIPELINE, name="answer", attributes={"user.id": "gina"}, suppress_warnings=True)
def answer(question):
    docs = retrieve(question)
    return f"{question}: {len(docs)} documents"

result = answer("where is my order")
trace.get_tracer_provider().force_flush()
print(json.dumps({"pipeline": PIPELINE, "result": result}))
"""


def test_an_interaction_and_its_traced_functions_become_a_run(sightline: ServerProcess) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "SIGHTLINE_KEY": sightline.key, "SIGHTLINE_URL": sightline.url}
    done = subprocess.run(
        [str(PYTHON), "-c", textwrap.dedent(SCRIPT)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    sent = json.loads(done.stdout.strip().splitlines()[-1])
    deadline = time.monotonic() + 15
    while True:
        runs = get(sightline, "/api/runs", pipelineSlug=sent["pipeline"])["data"]
        if runs or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(runs) == 1 and runs[0]["userId"] == "gina"
    run = get(sightline, f"/api/runs/{runs[0]['id']}")
    steps = {s["name"]: s for s in run["steps"]}
    assert set(steps) == {"answer", "retrieve"}
    assert steps["answer"]["outputs"] == sent["result"]
    assert steps["retrieve"]["outputs"] == ["doc-1", "doc-2"]
    assert steps["retrieve"]["parentSpanId"] == steps["answer"]["spanId"]
