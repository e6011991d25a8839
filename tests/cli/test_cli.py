"""The `sightline` command and a real `sightline serve` process."""

from __future__ import annotations

import gzip
import os
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson

from tests.conftest import ServerProcess, sightline_command
from tests.server.test_ingest import generation


def run(*args: str, database_url: str, **kw: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SIGHTLINE_DATABASE_URL": database_url}
    return subprocess.run(
        [*sightline_command(), *args], env=env, capture_output=True, text=True, timeout=60, **kw
    )  # type: ignore[call-overload]


def test_token_create_prints_only_the_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    made = run("token", "create", "--project", "demo", "--environment", "dev", database_url=url)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("sl_") and "\n" not in key
    listed = run("token", "list", database_url=url)
    assert key[:10] in listed.stdout and key not in listed.stdout and "active" in listed.stdout
    revoked = run("token", "revoke", key[:10], database_url=url)
    assert revoked.returncode == 0 and "revoked" in run("token", "list", database_url=url).stdout
    bad = run("token", "create", "--project", "no spaces allowed", database_url=url)
    assert bad.returncode == 1 and "\nerror: project" in bad.stderr  # after the line naming the database


def test_create_admin(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    ok = run("create-admin", "--username", "ada", "--password", "correct horse", database_url=url)
    assert ok.returncode == 0, ok.stderr
    again = run("create-admin", "--username", "ada", "--password", "correct horse", database_url=url)
    assert again.returncode == 1 and "exists" in again.stderr
    short = run("create-admin", "--username", "bob", "--password", "short", database_url=url)
    assert short.returncode == 1 and "password" in short.stderr
    missing = run("create-admin", "--username", "eve", database_url=url, stdin=subprocess.DEVNULL)
    assert missing.returncode == 2 and "--password" in missing.stderr


def test_a_real_server_ingests_and_exports(server: ServerProcess, tmp_path: Path) -> None:
    headers = {"Authorization": f"Bearer {server.key}"}
    bodies = [generation(metadata={"userId": f"user-{i % 4}"}) for i in range(50)]
    r = httpx.post(
        f"{server.url}/api/ingest",
        headers=headers,
        json={"batch": [{"type": "generation", "body": b} for b in bodies]},
    )
    assert r.status_code == 200 and {x["status"] for x in r.json()["results"]} == {201}
    listed = httpx.get(f"{server.url}/api/generations", headers=headers, params={"userId": "user-1"}).json()
    assert len(listed["data"]) == 13  # i % 4 == 1 for 13 of 0..49
    assert httpx.get(f"{server.url}/healthz").json()["status"] == "ok"
    metrics = httpx.get(f"{server.url}/metrics").text
    assert "sightline_generations_ingested_total 50.0" in metrics
    assert "sightline_write_queue_depth" in metrics and "sightline_ingest_seconds_bucket" in metrics
    assert httpx.get(f"{server.url}/docs").status_code == 200
    openapi = httpx.get(f"{server.url}/openapi.json").json()
    assert "/api/generations/aggregate" in openapi["paths"]
    ingest_body = openapi["paths"]["/api/ingest"]["post"]["requestBody"]["content"]["application/json"]
    assert (
        ingest_body["schema"]["$ref"].endswith("/IngestBatch")
        and "Generation" in openapi["components"]["schemas"]
    )

    out = tmp_path / "all.jsonl"
    done = server.cli("export", "--project", "demo", "--output", str(out))
    assert done.returncode == 0, done.stderr
    lines = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert {x["id"] for x in lines} == {b["id"] for b in bodies}
    csv_out = tmp_path / "alice.csv"
    done = server.cli(
        "export",
        "--project",
        "demo",
        "--format",
        "csv",
        "--filter",
        "userId=user-2",
        "--field",
        "id",
        "--field",
        "model.id",
        "--output",
        str(csv_out),
    )
    assert done.returncode == 0, done.stderr
    rows = csv_out.read_text().splitlines()
    assert rows[0] == "id,model.id" and len(rows) == 1 + 12  # i % 4 == 2 for 12 of 0..49

    backup = tmp_path / "backup.jsonl.gz"
    assert server.cli("backup", str(backup)).returncode == 0
    with gzip.open(backup) as f:
        lines = [orjson.loads(x) for x in f.read().splitlines()]
    tables = {x["table"] for x in lines if "table" in x}
    assert lines[-1]["counts"]["generations"] == 50  # the last line counts the rows
    assert {"generations", "api_keys", "projects"} <= tables
    restored = tmp_path / "restored.db"
    r2 = run("restore", str(backup), database_url=f"sqlite:///{restored}")
    assert r2.returncode == 0, r2.stderr
    copy = tmp_path / "copy.jsonl"
    again = run("export", "--project", "demo", "--output", str(copy), database_url=f"sqlite:///{restored}")
    assert again.returncode == 0, again.stderr
    assert copy.read_bytes().count(b"\n") == 50


def test_retention_and_erasure_from_the_command_line(server: ServerProcess) -> None:
    long_ago = (datetime.now(UTC) - timedelta(days=100)).isoformat()
    gens = [generation(id=str(uuid.uuid4()), timestamp=long_ago) for _ in range(3)]
    gens.append(generation(id=str(uuid.uuid4()), metadata={"userId": "carol"}))
    batch = [{"type": "generation", "body": g} for g in gens]
    headers = {"Authorization": f"Bearer {server.key}"}
    assert httpx.post(f"{server.url}/api/ingest", json={"batch": batch}, headers=headers).status_code == 200
    bad = server.cli("retention", "set", "--project", "demo", "--delete-after", "3", "--anonymise-after", "4")
    assert bad.returncode != 0 and "exactly one" in bad.stderr
    done = server.cli("retention", "set", "--project", "demo", "--delete-after", "30")
    assert done.returncode == 0, done.stderr
    dry = server.cli("retention", "run", "--dry-run")
    assert dry.returncode == 0 and '"generations": 3' in dry.stdout, dry.stdout + dry.stderr
    ran = server.cli("retention", "run")
    assert ran.returncode == 0 and '"generations": 3' in ran.stdout, ran.stdout + ran.stderr
    erased = server.cli("erase", "--project", "demo", "--user-id", "carol")
    assert erased.returncode == 0 and '"generations": 1' in erased.stdout, erased.stdout + erased.stderr
    left = httpx.get(f"{server.url}/api/generations", headers=headers).json()["data"]
    assert left == []


def test_provider_add_refuses_an_empty_key_and_says_what_became_default(tmp_path: Path) -> None:
    env = {**os.environ, "SIGHTLINE_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}"}

    def add(*extra: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        args = ("provider", "add", "--project", "demo", "--base-url", "http://127.0.0.1:9/v1", *extra)
        return subprocess.run(
            [*sightline_command(), *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
        )

    empty = add("--name", "a", "--api-key", "-", stdin="\n")
    assert empty.returncode != 0 and "empty" in empty.stderr
    first = add("--name", "a", stdin="sk-1\n")
    assert first.returncode == 0 and "is now the project's default" in first.stderr, first.stderr
    second = add("--name", "b", "--no-key")
    assert second.returncode == 0 and "default" not in second.stderr, second.stderr
    both = add("--name", "c", "--no-key", "--api-key", "sk-2")
    assert both.returncode != 0 and "not both" in both.stderr


def test_commands_find_one_database_whichever_folder_they_run_in(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGHTLINE_")}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    outputs = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        done = subprocess.run(
            [*sightline_command(), "token", "create", "--project", f"p{folder}"],
            cwd=tmp_path / folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stderr)
    expected = tmp_path / "data" / "sightline" / "sightline.db"
    assert all(f"database: sqlite:///{expected}" in err for err in outputs), outputs
    assert not (tmp_path / "a" / "sightline.db").exists() and not (tmp_path / "b" / "sightline.db").exists()
    listed = subprocess.run([*sightline_command(), "token", "list"], env=env, capture_output=True, text=True)
    assert "pa" in listed.stdout and "pb" in listed.stdout
