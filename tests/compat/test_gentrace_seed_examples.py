"""Every Python example of the gentrace seed documents, run on ``sightline.compat.gentrace``.

The examples are read from the seed text (``/work/shared/seeds``, or ``SIGHTLINE_SEEDS``) and run with
only their import changed (``import gentrace`` -> ``from sightline.compat import gentrace``). The
addresses come from the environment (``SIGHTLINE_SERVER_URL``, ``SIGHTLINE_API_KEY`` and openai's
``OPENAI_BASE_URL``: a real server and the fake provider), the document's ``process.env.OPENAI_KEY`` is a
key for that provider, and what an example says it omits ("Omit SDK initialization") is done for it:
a pipeline ``"compose"``, a run and its client, or the simple SDK's client. Then the records each
example should leave are read back through Sightline's API.
"""

from __future__ import annotations

import ast
import functools
import gc
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sightline.compat import gentrace
from tests.compat import gentrace_support
from tests.compat.gentrace_support import get
from tests.compat.seed_examples import python_examples, rebuild
from tests.conftest import ServerProcess
from tests.fake_openai import FakeOpenAI

sightline, upstream = gentrace_support.sightline, gentrace_support.upstream  # one each for this module

SEEDS = Path(os.environ.get("SIGHTLINE_SEEDS", "/work/shared/seeds"))
USER_IDS, METADATA = SEEDS / "000_61feb44932acc1a6.txt", SEEDS / "001_51cd1a8539de0ba4.txt"
USER = "TWFuIGlzIGRpc3Rpbmd1aXNoZW"
GIT_SHA = "63ce36deceeb28da94f7f8176166f9f1f399134d"
EXTERNAL = {"type": "url", "url": "https://external-service.example.com", "text": "External service"}

pytestmark = pytest.mark.skipif(
    not USER_IDS.exists() or not METADATA.exists(), reason=f"the gentrace seed documents are not in {SEEDS}"
)


@functools.cache
def examples(seed: Path) -> list[str]:
    """The seed's Python examples, line breaks back, import changed: nothing else."""
    found = python_examples(seed.read_text())
    corpus = "\n".join(found)
    return [
        rebuild(code, corpus).replace("import gentrace\n", "from sightline.compat import gentrace\n", 1)
        for code in found
    ]


def _free_names(source: str) -> set[str]:
    tree = ast.parse(source)
    stored = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    loaded = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return loaded - stored - set(dir(__builtins__))


def what_it_omits(source: str) -> str:
    """The initialization an example leaves out ("Omit SDK initialization", ...), as the documents do it."""
    free = _free_names(source)
    lines = ["from sightline.compat import gentrace"]
    if "openai" in free and "pipeline_slug=" in source:  # the simple SDK
        lines.append("openai = gentrace.OpenAI(api_key=process.env.OPENAI_KEY)")
    elif "pipeline" in free or "openai" in free:
        lines.append(
            'pipeline = gentrace.Pipeline("compose", openai_config={"api_key": process.env.OPENAI_KEY})'
        )
        if "openai" in free:
            lines += ["runner = pipeline.start()", "openai = runner.get_openai()"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def environment(
    sightline: ServerProcess, upstream: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The server and the provider, where the examples' code finds them: the environment."""
    gentrace.deinit()
    monkeypatch.setenv("SIGHTLINE_SERVER_URL", sightline.url)
    monkeypatch.setenv("SIGHTLINE_API_KEY", sightline.key)
    monkeypatch.setenv("OPENAI_BASE_URL", upstream.base_url)
    yield
    gentrace.flush()


def run_example(source: str) -> tuple[dict[str, Any], BaseException | None]:
    """Run one example; (the names it left, what it raised). Its dropped streams are recorded (as
    incomplete) once it is over, as at the end of a program."""
    namespace: dict[str, Any] = {"process": SimpleNamespace(env=SimpleNamespace(OPENAI_KEY="sk-upstream"))}
    raised = None
    try:
        exec(compile(what_it_omits(source) + source, "<seed example>", "exec"), namespace)
    except Exception as exc:  # the Limitations example is meant to fail
        raised = exc
    left = {name: value for name, value in namespace.items() if name in ("runner", "PIPELINE_SLUG")}
    namespace.clear()  # its streams, dropped, record what they got: nothing
    gc.collect()
    gentrace.flush()
    return left, raised


def _run_of(left: dict[str, Any], server: ServerProcess) -> dict[str, Any]:
    return dict(get(server, f"/api/runs/{left['runner'].get_id()}"))


def _generations(server: ServerProcess, run: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in run["steps"] if s["kind"] == "generation"]


# What each example leaves in Sightline (by its position in its document).


def check_simple_sdk(left: dict[str, Any], raised: BaseException | None, server: ServerProcess) -> None:
    assert raised is None
    (run,) = get(server, "/api/runs", userId=USER, pipelineSlug="example-completion")["data"]
    (gen,) = _generations(server, get(server, f"/api/runs/{run['id']}"))
    assert (
        gen["template"]["chat"][0]["content"]
        == "Hello! My name is {{ name }}. Write a brief essay about Maine."
    )
    assert (
        gen["input"]["content"][0]["content"] == "Hello! My name is Vivek. Write a brief essay about Maine."
    )
    assert gen["metadata"]["userId"] == USER


def check_advanced_user(left: dict[str, Any], raised: BaseException | None, server: ServerProcess) -> None:
    assert raised is None
    run = _run_of(left, server)
    assert run["userId"] == USER and run["pipelineSlug"] == "compose"
    (gen,) = _generations(server, run)
    assert gen["metadata"]["userId"] == USER  # found by its run's user
    assert gen["id"] in {g["id"] for g in get(server, "/api/generations", userId=USER)["data"]}


def check_limitation(left: dict[str, Any], raised: BaseException | None, server: ServerProcess) -> None:
    assert isinstance(raised, gentrace.UserIdOnStepError), raised
    assert "cannot be specified on a single step within a multi-step pipeline" in str(raised)
    run = _run_of(left, server)
    assert run["userId"] is None and _generations(server, run) == []  # the refused call was not made


def check_start_metadata(left: dict[str, Any], raised: BaseException | None, server: ServerProcess) -> None:
    assert raised is None
    run = _run_of(left, server)
    assert run["metadata"]["externalServiceUrl"] == EXTERNAL
    assert run["metadata"]["gitSha"] == {"type": "string", "value": GIT_SHA}
    (gen,) = _generations(server, run)
    tagged = get(server, "/api/generations", runId=run["id"], **{"metadata.gitSha": GIT_SHA})["data"]
    assert [g["id"] for g in tagged] == [gen["id"]]


def check_step_metadata(left: dict[str, Any], raised: BaseException | None, server: ServerProcess) -> None:
    check_start_metadata(left, raised, server)  # step metadata lands on the run just the same
    run = _run_of(left, server)  # submitted; its one call streams, and the example never reads the stream:
    # that call is recorded as an incomplete stream (an error), and a run shows its steps' failures.
    (gen,) = _generations(server, run)
    assert gen["error"]["type"] == "incomplete_stream" and run["status"] == "error"


def check_both_metadata(left: dict[str, Any], raised: BaseException | None, server: ServerProcess) -> None:
    assert raised is None
    run = _run_of(left, server)
    assert run["metadata"]["gitSha"]["value"] == GIT_SHA and run["metadata"]["externalServiceUrl"] == EXTERNAL
    (gen,) = _generations(server, run)
    found = get(
        server, "/api/generations", runId=run["id"], **{"metadata.externalServiceUrl": EXTERNAL["url"]}
    )
    assert [g["id"] for g in found["data"]] == [gen["id"]]


def check_latest_write(left: dict[str, Any], raised: BaseException | None, server: ServerProcess) -> None:
    assert raised is None
    run = _run_of(left, server)
    assert run["metadata"]["promptId"] == {"type": "string", "value": "SGVsbG8g"}  # the second write wins
    assert len(_generations(server, run)) == 2


Check = Callable[[dict[str, Any], BaseException | None, ServerProcess], None]
EXPECTED: dict[str, list[Check]] = {
    USER_IDS.name: [check_simple_sdk, check_advanced_user, check_limitation],
    METADATA.name: [check_start_metadata, check_step_metadata, check_both_metadata, check_latest_write],
}


def test_every_python_example_is_checked() -> None:
    for seed in (USER_IDS, METADATA):
        assert len(examples(seed)) == len(EXPECTED[seed.name]), seed.name


@pytest.mark.parametrize(
    ("seed", "index"),
    [(USER_IDS, i) for i in range(3)] + [(METADATA, i) for i in range(4)],
    ids=lambda value: value.name.split("_")[0] if isinstance(value, Path) else str(value),
)
@pytest.mark.usefixtures("environment")
def test_seed_example(seed: Path, index: int, sightline: ServerProcess) -> None:
    source = examples(seed)[index]
    assert "from sightline.compat import gentrace" in source or "import" not in source
    left, raised = run_example(source)
    EXPECTED[seed.name][index](left, raised, sightline)
