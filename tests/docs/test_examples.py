"""The guide's examples, run against a real server: what a reader copies must work.

Which blocks run:

- on the pages in :data:`RUN_PAGES`, every ```` ```python ```` block, unless the line before it is
  ``<!-- no-run: why -->``; on the other pages, only those marked ``<!-- run -->``;
- a ```` ```sh ```` block marked ``<!-- run -->`` (with bash, ``set -e``).

A page's blocks run in the page's order in one fresh interpreter: its Python blocks as one script (a
later example uses the client made by an earlier one; a traceback names the page and its line), its
shell blocks in bash between them (a prompt saved by ``curl`` is then fetched by the SDK). The
examples' server address, ``http://127.0.0.1:8000``, becomes the test server's; the environment gives
them a Sightline key (``SIGHTLINE_API_KEY``) and a model provider (``OPENAI_BASE_URL``: the fake one in
``tests/fake_openai.py``), as a reader's shell would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import sightline_command
from tests.dashboard.conftest import UsersServer

DOCS = Path(__file__).resolve().parents[2] / "docs"
RUN_PAGES = ("quickstart.md", "sdk.md", "gateway.md", "api.md", "queries.md")
EXAMPLE_SERVER = "http://127.0.0.1:8000"
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.S | re.M)
_MARK = re.compile(r"<!--\s*(run|no-run)\b[^>]*-->\s*$")

# Runs the blocks given on stdin in order: Python compiled under its page's name with its lines numbered
# as in the page, shell in bash (failing on a non-zero exit or an error answer); then waits for the SDK
# to deliver what the examples recorded.
_RUNNER = """
import json, subprocess, sys
page, blocks = sys.argv[1], json.load(sys.stdin)
namespace = {"__name__": "__main__"}
for block in blocks:
    if block["language"] == "sh":
        done = subprocess.run(["bash", "-c", "set -euo pipefail\\n" + block["code"]],
                              capture_output=True, text=True, timeout=60)
        where = f"{page}:{block['line']}"
        assert done.returncode == 0, f"{where} failed: {done.stderr}"
        assert '"error"' not in done.stdout, f"{where} answered an error: {done.stdout}"
        print(done.stdout)
        continue
    source = "\\n" * block["line"] + block["code"]
    exec(compile(source, page, "exec"), namespace)
import sightline
assert sightline.flush(30), "the SDK could not deliver what the examples recorded"
stats = sightline.stats()
assert stats.rejected == 0 and stats.failed == 0 and stats.dropped == 0, stats
"""


@dataclass(frozen=True)
class Example:
    page: str
    line: int  # the line of the opening fence, counted from 1
    language: str
    code: str
    run: bool


def examples(path: Path) -> list[Example]:
    """The fenced code blocks of one page, each with whether it runs (see the module docstring)."""
    text = path.read_text()
    found = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = _MARK.search(before)
        language = match.group(1)
        if language == "python":
            run = mark.group(1) == "run" if mark else path.name in RUN_PAGES
        else:
            run = language == "sh" and mark is not None and mark.group(1) == "run"
        line = text.count("\n", 0, match.start()) + 1
        found.append(Example(path.name, line, language, match.group(2), run))
    return found


def _runnable(*languages: str) -> list[tuple[str, list[Example]]]:
    """``(page, its blocks that run)`` for each page with any, blocks in the page's order."""
    pages = []
    for path in sorted(DOCS.glob("*.md")):
        chosen = [e for e in examples(path) if e.run and e.language in languages]
        if chosen:
            pages.append((path.name, chosen))
    return pages


def _page_key(server: UsersServer, page: str) -> str:
    """A key of a project of the page's own (``docs-sdk``, ...): no page's examples see another's data."""
    done = subprocess.run(
        [
            *sightline_command(),
            "token",
            "create",
            "--project",
            f"docs-{Path(page).stem}",
            "--environment",
            "dev",
        ],
        env={**os.environ, "SIGHTLINE_DATABASE_URL": server.database_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def _environment(server: UsersServer, key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OPENAI_"))}
    return {
        **env,
        "SIGHTLINE_API_KEY": key,
        "SIGHTLINE_SERVER_URL": server.url,
        "OPENAI_API_KEY": "sk-docs-example",
        "OPENAI_BASE_URL": server.upstream.base_url,
        "PYTHONUNBUFFERED": "1",
    }


def test_the_pages_that_teach_the_sdk_and_the_api_have_examples_that_run() -> None:
    counted = {page: len(blocks) for page, blocks in _runnable("python")}
    for page in RUN_PAGES:
        assert counted.get(page, 0) >= 1, f"{page} has no Python example that runs"
    assert counted["sdk.md"] >= 10
    assert {"quickstart.md", "api.md", "gateway.md"} <= {page for page, _ in _runnable("sh")}


RUNNABLE = _runnable("python", "sh")


@pytest.mark.parametrize(("page", "blocks"), RUNNABLE, ids=[page for page, _ in RUNNABLE])
def test_examples_run(page: str, blocks: list[Example], docs_server: UsersServer, tmp_path: Path) -> None:
    run_page(page, blocks, docs_server, _page_key(docs_server, page), tmp_path)


def run_page(page: str, blocks: list[Example], server: UsersServer, key: str, cwd: Path) -> None:
    """Run one page's blocks in order (see the module docstring) with ``key`` as the reader's key."""
    payload = [
        {"line": b.line, "language": b.language, "code": b.code.replace(EXAMPLE_SERVER, server.url)}
        for b in blocks
    ]
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER, page],
        input=json.dumps(payload),
        env=_environment(server, key),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"{page}'s examples failed:\n{done.stderr}\n{done.stdout}"
    assert done.stdout.strip(), f"{page}'s examples printed nothing"
    print(f"--- {page}\n{done.stdout}")  # shown with -s: what a reader would see


def test_what_the_quickstart_recorded_can_be_found(docs_server: UsersServer, tmp_path: Path) -> None:
    """After the quickstart's examples, the list finds alice's generation, as the page says it will."""
    key = _page_key(docs_server, "quickstart-again")
    run_page("quickstart.md", dict(RUNNABLE)["quickstart.md"], docs_server, key, tmp_path)
    with httpx.Client(base_url=docs_server.url, headers={"Authorization": f"Bearer {key}"}) as api:
        found = api.get("/api/generations", params={"userId": "alice"}).json()["data"]
    assert found and all(g["metadata"]["userId"] == "alice" for g in found)
