"""Settings: one object, fixed precedence, every setting documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from sightline.settings import Settings

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_setting_is_documented_in_the_readme() -> None:
    text = README.read_text()
    missing = [
        name
        for name in Settings.model_fields
        if f"`{name}`" not in text or f"`SIGHTLINE_{name.upper()}`" not in text
    ]
    assert not missing, f"settings missing from the README's table: {missing}"


def test_argument_beats_environment_beats_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert Settings().port == 8000
    monkeypatch.setenv("SIGHTLINE_PORT", "9001")
    assert Settings().port == 9001
    assert Settings(port=9002).port == 9002
    monkeypatch.setenv("SIGHTLINE_HOME", str(tmp_path))
    assert Settings().database_url == f"sqlite:///{tmp_path.resolve() / 'sightline.db'}"


def test_production_refuses_the_development_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="SIGHTLINE_SECRET_KEY"):
        Settings(environment="production")
    assert Settings(environment="production", secret_key="s" * 40).environment == "production"


def test_the_writer_runs_in_a_process_of_its_own_when_the_server_has_cores_for_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings(writer="process").writer_process
    assert not Settings(writer="thread").writer_process
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    assert Settings().writer == "auto" and Settings().writer_process
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {1})  # e.g. under `taskset -c 1`
    assert not Settings().writer_process
    with pytest.raises(ValueError, match="writer"):
        Settings(writer="fork")
