"""What the gentrace compatibility tests share: a real `sightline serve` and a fake provider per module."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ServerProcess, sightline_command, start_server, stop_server
from tests.fake_openai import FakeOpenAI, serve

__all__ = ["get", "sightline", "upstream"]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    """The fake model provider (``base_url`` ends in ``/v1``)."""
    with serve() as fake:
        yield fake


@pytest.fixture(scope="module")
def sightline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One ``sightline serve`` (SQLite, its writer in a process of its own) with a key of project demo."""
    home = tmp_path_factory.mktemp("gentrace-server")
    database_url = f"sqlite:///{home / 'server.db'}"
    made = subprocess.run(
        [*sightline_command(), "token", "create", "--project", "demo", "--environment", "dev"],
        env={**os.environ, "SIGHTLINE_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    process, url = start_server(database_url, Path(home / "server.log"))
    try:
        yield ServerProcess(url, database_url, made.stdout.strip(), process, home / "server.log")
    finally:
        stop_server(process)


def get(server: ServerProcess, path: str, **params: str) -> Any:
    """GET a Sightline API path with the server's key; the JSON answer."""
    r = httpx.get(f"{server.url}{path}", params=params, headers={"Authorization": f"Bearer {server.key}"})
    assert r.status_code == 200, r.text
    return r.json()
