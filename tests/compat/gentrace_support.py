"""What the compatibility tests share: a real `sightline serve` and a fake provider per module."""

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

__all__ = ["get", "serve_sightline", "sightline", "upstream"]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    """The fake model provider (``base_url`` ends in ``/v1``)."""
    with serve() as fake:
        yield fake


def serve_sightline(home: Path, env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    """``sightline serve`` on a SQLite file under ``home`` (its writer in a process of its own), with a key
    of project demo, and ``env`` (``SIGHTLINE_*`` settings) on top of this process's environment."""
    database_url = f"sqlite:///{home / 'server.db'}"
    made = subprocess.run(
        [*sightline_command(), "token", "create", "--project", "demo", "--environment", "dev"],
        env={**os.environ, "SIGHTLINE_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    process, url = start_server(database_url, Path(home / "server.log"), env=env)
    try:
        yield ServerProcess(url, database_url, made.stdout.strip(), process, home / "server.log")
    finally:
        stop_server(process)


@pytest.fixture(scope="module")
def sightline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One ``sightline serve`` per test module (see :func:`serve_sightline`)."""
    yield from serve_sightline(tmp_path_factory.mktemp("compat-server"))


def get(server: ServerProcess, path: str, **params: str) -> Any:
    """GET a Sightline API path with the server's key; the JSON answer."""
    r = httpx.get(f"{server.url}{path}", params=params, headers={"Authorization": f"Bearer {server.key}"})
    assert r.status_code == 200, r.text
    return r.json()
