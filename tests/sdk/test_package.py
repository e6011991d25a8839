"""The package: public names, no import-time side effects, no server dependencies."""

from __future__ import annotations

import subprocess
import sys

import sightline
import sightline.sdk


def test_all_is_the_whole_public_api() -> None:
    assert set(sightline.__all__) == set(sightline.sdk.__all__) | {"__version__"}
    for name in sightline.__all__:
        assert getattr(sightline, name) is not None
    assert sorted(dir(sightline)) == sorted(sightline.__all__)


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_importing_sightline_does_nothing() -> None:
    out = _run(
        "import os, sys, threading; before = dict(os.environ); import sightline; "
        "print('openai' in sys.modules, threading.active_count(), dict(os.environ) == before)"
    )
    assert out == "False 1 True"


def test_building_a_client_starts_no_thread() -> None:
    out = _run(
        "import threading, sightline; "
        "config = sightline.SightlineConfig(api_key='sl', server_url='http://x'); "
        "sightline.Client(api_key='k', sightline=config); "
        "print(threading.active_count())"
    )
    assert out == "1"


def test_the_sdk_imports_no_server_code_and_no_optional_library() -> None:
    forbidden = [
        "sightline.store",
        "sightline.server",
        "sightline.gateway",
        "sightline.pipelines",
        "sightline.cli",
        "sightline.settings",
        "fastapi",
        "sqlalchemy",
        "starlette",
        "phonenumbers",
        "stdnum",
    ]
    out = _run(
        "import sys, sightline, sightline.sdk; "
        "from sightline.sdk import _client, _pipeline, _worker, _encode, _sender, _wire, _feedback; "
        f"print([m for m in sys.modules if any(m == f or m.startswith(f + '.') for f in {forbidden!r})])"
    )
    assert out == "[]"
