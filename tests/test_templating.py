"""Templates: rendering, THE one version (SDK, gateway and store agree), and the migration of old versions."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from alembic import command
from sqlalchemy import Engine, MetaData, Table, create_engine, insert, select, text

import sightline
from sightline.sdk import _worker
from sightline.sdk._params import InvalidParams
from sightline.store import migrate
from sightline.store.engine.migrate import alembic_config
from sightline.templating import TemplateError, render_chat, render_text, template_name, template_version
from tests.conftest import Api, sightline_command, start_server, stop_server
from tests.fake_openai import FakeOpenAI, serve

EMOJI = [{"role": "user", "content": "Show me an emoji for the sport: {sport}"}]


# -- rendering --------------------------------------------------------------------------------------


def test_text_placeholders_are_filled_and_doubled_braces_are_literal() -> None:
    assert render_text("{a} and {{literal}} {b}", {"a": 1, "b": "x"}) == "1 and {literal} x"
    assert render_text('JSON: {"k": 1}', {}) == 'JSON: {"k": 1}'


def test_a_missing_parameter_names_itself() -> None:
    with pytest.raises(TemplateError, match=r"template parameter \{sport\} is not given") as caught:
        render_text("Emoji for {sport}", {})
    assert caught.value.field == "sport"
    assert caught.value.status_code == 400  # an InvalidInput: the server answers it as a 400


def test_chat_renders_text_content_and_parts_and_expands_history_without_touching_the_template() -> None:
    template = [
        {"role": "system", "content": "You answer in {lang}."},
        {"role": "chat_history", "content": "{history}"},
        {"role": "user", "content": [{"type": "text", "text": "About {topic}"}, {"type": "image_url"}]},
    ]
    before = json.loads(json.dumps(template))
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    rendered = render_chat(template, {"lang": "French", "history": history, "topic": "{x}"})
    assert rendered == [
        {"role": "system", "content": "You answer in French."},
        *history,
        {"role": "user", "content": [{"type": "text", "text": "About {x}"}, {"type": "image_url"}]},
    ]
    assert template == before


def test_chat_refuses_what_it_cannot_render() -> None:
    with pytest.raises(TemplateError):
        render_chat(["not a message"], {})
    with pytest.raises(TemplateError) as caught:
        render_chat([{"role": "chat_history", "content": "{h}"}], {"h": "not a list"})
    assert caught.value.field == "h"


def test_the_sdk_raises_its_own_error_for_a_template_it_cannot_render() -> None:
    from sightline.sdk._templates import render_chat as sdk_render_chat
    from sightline.sdk._templates import render_text as sdk_render_text

    with pytest.raises(InvalidParams) as caught:
        sdk_render_text("{sport}", {})
    assert caught.value.field == "sport"
    with pytest.raises(InvalidParams):
        sdk_render_chat([{"role": "user", "content": "{x}"}], {})


def test_templating_needs_nothing_beyond_the_standard_library() -> None:
    # The SDK imports it, and the SDK installs with openai and httpx only.
    code = (
        "import sys; before = set(sys.modules); import sightline.templating; "
        "extra = sorted(m for m in set(sys.modules) - before "
        "if m.split('.')[0] not in sys.stdlib_module_names and m.split('.')[0] != 'sightline'); "
        "assert not extra, extra"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- the version ------------------------------------------------------------------------------------


def _old_sdk_version(chat: Any, text: str | None) -> str:
    content = {"chat": chat} if chat is not None else {"text": text}
    dumped = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(dumped.encode()).hexdigest()[:16]


def _old_server_version(chat: Any, text: str | None) -> str:
    content = {k: v for k, v in (("chat", chat), ("text", text)) if v is not None}
    return hashlib.sha256(orjson.dumps(content)).hexdigest()[:12]


def test_the_version_is_the_content_not_its_key_order_nor_its_parameters() -> None:
    reordered = [{"content": EMOJI[0]["content"], "role": "user"}]
    assert template_version(EMOJI, None) == template_version(reordered, None)
    assert template_version(EMOJI, None) != template_version([{"role": "user", "content": "Other {x}"}], None)
    assert template_version(None, "a") != template_version(None, "b")
    assert template_version(None, "a") != template_version([{"role": "user", "content": "a"}], None)
    assert len(template_version(EMOJI, None)) == 16
    assert template_version(None, "\ud800 lone surrogate")  # a caller's odd string does not break it


def test_versions_the_sdk_recorded_before_stay_as_they_were() -> None:
    # The SDK's recipe was already the one kept: only the server's versions are migrated.
    assert template_version(EMOJI, None) == _old_sdk_version(EMOJI, None)
    assert template_version(None, "Hello {name}") == _old_sdk_version(None, "Hello {name}")
    assert template_version(None, None) == _old_sdk_version(None, None)


def test_a_template_without_a_name_is_named_after_its_first_words_and_version() -> None:
    name = template_name(EMOJI, None)
    assert name == f"show-me-an-emoji-for-the-{template_version(EMOJI, None)[:8]}"
    assert template_name(None, None).startswith("prompt-")


async def test_a_version_sent_by_a_client_is_replaced_by_the_contents(api: Api) -> None:
    # An application still on an older SDK sends its own version: the store keeps THE one.
    body = {
        "id": str(uuid.uuid4()),
        "timestamp": "2026-12-01T10:00:00Z",
        "model": {"id": "gpt-4o"},
        "input": {"content": "x"},
        "output": {"content": "y"},
        "template": {"name": "emoji", "version": "7c2141a7c6b4", "chat": EMOJI, "params": {"sport": "golf"}},
    }
    r = await api.http.post("/api/generations", json=body)
    assert r.status_code == 201, r.text
    got = (await api.http.get(f"/api/generations/{body['id']}")).json()
    assert got["template"]["version"] == template_version(EMOJI, None)
    r = await api.http.post(
        "/api/generations/query", json={"filter": {"template.version": template_version(EMOJI, None)}}
    )
    assert [g["id"] for g in r.json()["data"]] == [body["id"]]


def test_the_stores_cache_of_versions_keeps_no_big_template() -> None:
    from sightline.store.generations import records

    big = orjson.dumps({"text": "x" * 100_000}).decode()
    small = orjson.dumps({"chat": EMOJI}).decode()
    records._cached_version_of.cache_clear()
    for i in range(50):  # many big templates, each new: none is kept
        assert records.template_version(big + " " * i) == template_version(None, "x" * 100_000)
    assert records._cached_version_of.cache_info().currsize == 0
    assert records.template_version(small) == template_version(EMOJI, None)
    assert records._cached_version_of.cache_info().currsize == 1


# -- SDK and gateway: one template, one version -----------------------------------------------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    with serve() as server:
        yield server


def test_versions_come_from_templates_never_from_rendered_messages(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    database_url = f"sqlite:///{tmp_path / 'server.db'}"
    env = {**os.environ, "SIGHTLINE_DATABASE_URL": database_url}
    made = subprocess.run(
        [*sightline_command(), "token", "create", "--project", "demo", "--environment", "dev"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    key = made.stdout.strip().splitlines()[-1]
    process, url = start_server(
        database_url,
        tmp_path / "server.log",
        env={"SIGHTLINE_UPSTREAM_URL": upstream.base_url, "SIGHTLINE_UPSTREAM_API_KEY": "sk-upstream"},
    )
    messages = [
        {"role": "system", "content": "Answer with one emoji."},
        {"role": "user", "content": "An emoji for soccer"},
    ]
    try:
        _worker.reset()
        try:
            config = sightline.SightlineConfig(api_key=key, server_url=url)
            sdk = sightline.Client(api_key="sk-upstream", base_url=upstream.base_url, sightline=config)
            for sport in ("soccer", "golf"):  # one template, two renderings: one version
                sdk.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[],
                    sightline=sightline.CallParams(
                        prompt_template_name="emoji", template_chat=EMOJI, template_params={"sport": sport}
                    ),
                )
            # A name given to plain messages names the prompt only: no version from their content.
            sdk.chat.completions.create(
                model="gpt-4o-mini",
                messages=messages,  # type: ignore[arg-type]
                sightline={"prompt_template_name": "emoji"},
            )
            assert sightline.flush(10)
        finally:
            _worker.reset(timeout=5)
        gateway = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
        gateway.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,  # type: ignore[arg-type]
            extra_headers={"X-Sightline-Template-Name": "emoji"},
        )
        found: list[dict[str, Any]] = []
        for _ in range(500):  # the gateway's record lands a few ms after its answer
            found = httpx.get(
                f"{url}/api/generations",
                params={"template.name": "emoji"},
                headers={"Authorization": f"Bearer {key}"},
            ).json()["data"]
            if len(found) == 4:
                break
            time.sleep(0.02)
        assert len(found) == 4, found
        versions = sorted(str(g["template"].get("version")) for g in found)
        assert versions == sorted([template_version(EMOJI, None)] * 2 + ["None"] * 2)
        engine = create_engine(database_url)
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT version FROM prompt_versions WHERE name = 'emoji'")).all()
        engine.dispose()
        assert [v for (v,) in versions] == [template_version(EMOJI, None)]
    finally:
        stop_server(process)


# -- a database made by the old code, migrated ------------------------------------------------------


def _upgrade(engine: Engine, revision: str) -> None:
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def _old_generation(i: int, template: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f"00000000-0000-4000-8000-{i:012d}",
        "timestamp": "2026-11-01T00:00:00Z",
        "model": {"id": "gpt-4o"},
        "input": {"type": "text", "content": "q"},
        "output": {"type": "text", "content": "a"},
        "status": "ok",
        "cacheHit": False,
    }
    if template is not None:
        body["template"] = template
    return {
        "id": body["id"],
        "project_id": 1,
        "environment": "dev",
        "ts_us": 1_000_000 + i,
        "model_id": "gpt-4o",
        "template_name": template.get("name") if template else None,
        "template_version": template.get("version") if template else None,
        "status": "ok",
        "cache_hit": False,
        "output_type": "text",
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "total_tokens": 2,
        "latency_ms": 1.0,
        "body": body,
    }


def test_a_database_made_by_the_old_code_ends_with_the_one_version(empty_database_url: str) -> None:
    # As the gateway's records reached the old server: keys in the order they arrived (content first).
    chat = [{"content": "An emoji for {sport}", "role": "user"}]
    new = template_version(chat, None)
    server_old, sdk_old = _old_server_version(chat, None), _old_sdk_version(chat, None)
    assert len({new, server_old}) == 2 and sdk_old == new
    text_old = _old_server_version(None, "Hello {name}")

    engine = create_engine(empty_database_url)
    _upgrade(engine, "0003")  # the schema the old code ran on
    rows = []
    for i in range(1, 1201):  # more than two of the migration's batches
        sdk = i % 3 == 0
        version = sdk_old if sdk else server_old
        rows.append(_old_generation(i, {"name": "emoji", "version": version, "chat": chat, "params": {}}))
    rows.append(_old_generation(2001, {"name": "hello", "version": text_old, "text": "Hello {name}"}))
    rows.append(_old_generation(2002, None))
    rows.append(_old_generation(2003, {"name": "bare", "version": "v-by-hand"}))
    with engine.begin() as conn:
        tables = MetaData()
        generations = Table("generations", tables, autoload_with=conn)
        prompt_versions = Table("prompt_versions", tables, autoload_with=conn)
        conn.execute(insert(generations), rows)
        conn.execute(
            insert(prompt_versions),
            [
                {
                    "project_id": 1,
                    "name": "emoji",
                    "version": server_old,
                    "created_us": 200,
                    "body": {"chat": chat},
                },
                {
                    "project_id": 1,
                    "name": "emoji",
                    "version": sdk_old,
                    "created_us": 100,
                    "body": {"chat": chat},
                },
                {
                    "project_id": 1,
                    "name": "hello",
                    "version": text_old,
                    "created_us": 300,
                    "body": {"text": "Hello {name}"},
                },
            ],
        )

    migrate(engine)

    with engine.connect() as conn:
        stored = {
            row.id: (row.template_version, row.body)
            for row in conn.execute(
                select(generations.c.id, generations.c.template_version, generations.c.body)
            )
        }
        prompts = sorted(
            (row.name, row.version, row.created_us)
            for row in conn.execute(
                select(prompt_versions.c.name, prompt_versions.c.version, prompt_versions.c.created_us)
            )
        )
    engine.dispose()
    for row in rows:
        version, body = stored[row["id"]]
        if row["body"].get("template") is None:
            assert version is None and body == row["body"]
            continue
        expected = {"emoji": new, "hello": template_version(None, "Hello {name}"), "bare": "v-by-hand"}
        want = expected[row["template_name"]]
        assert version == want
        assert body == {**row["body"], "template": {**row["body"]["template"], "version": want}}
    assert prompts == [("emoji", new, 100), ("hello", template_version(None, "Hello {name}"), 300)]

    # The downgrade keeps the versions (the old code takes any text), and the upgrade comes back.
    engine = create_engine(empty_database_url)
    config = alembic_config(empty_database_url)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0006")
        command.upgrade(config, "head")
    with engine.connect() as conn:
        assert (
            conn.execute(
                select(generations.c.template_version).where(generations.c.id == rows[0]["id"])
            ).scalar()
            == new
        )
    engine.dispose()
