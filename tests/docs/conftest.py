"""The guide's fixtures: a real ``sightline serve`` with a fake model provider behind its gateway, and
Chromium (the dashboard tests' fixtures, reused). Failing browser tests leave a screenshot under
``test-artifacts/``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sightline.server.routers.guide import GUIDE_DIR
from tests.dashboard.conftest import (  # noqa: F401 - fixtures and the report hook, shared
    UsersServer,
    browser,
    playwright_instance,
    pytest_runtest_makereport,
    serve_with_users,
)

ROOT = Path(__file__).resolve().parents[2]
MKDOCS = [sys.executable, "-m", "mkdocs"]


def build_guide(site_dir: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` of the repository's guide into ``site_dir``."""
    return subprocess.run(
        [*MKDOCS, "build", "--strict", "--site-dir", str(site_dir)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="session")
def built_guide() -> Path:
    """The guide where the server serves it, built now (as ``scripts/setup`` does) if missing or stale."""
    index = GUIDE_DIR / "index.html"
    sources = [ROOT / "mkdocs.yml", ROOT / "README.md", *(ROOT / "docs").rglob("*")]
    if not index.is_file() or any(p.stat().st_mtime > index.stat().st_mtime for p in sources):
        done = build_guide(GUIDE_DIR)
        assert done.returncode == 0, done.stderr
    return GUIDE_DIR


@pytest.fixture(scope="session")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UsersServer]:
    """``sightline serve`` on a fresh SQLite file, users ``admin`` and ``member``, a key of project
    ``demo``, and a fake OpenAI provider as the gateway's upstream."""
    yield from serve_with_users(tmp_path_factory.mktemp("docs"))
