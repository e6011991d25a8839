"""Managed prompts in the store, through the real writer, on SQLite and PostgreSQL: versions, labels,
the audit rows, the shared namespace with functions, recorded templates beside managed versions."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, insert, inspect

from sightline.errors import Conflict, InvalidInput, NotFound
from sightline.store import Database
from sightline.store import tables as t
from sightline.store.access.audit import Actor, audit_entries
from sightline.store.engine.migrate import alembic_config
from sightline.store.prompts import (
    MoveLabel,
    SavePrompt,
    get_prompt,
    list_prompts,
    parse_draft,
    prompt_history,
    prompt_names,
)
from sightline.templating import TemplateError, template_version

ALICE = Actor("user", 1, "alice", "10.0.0.7")
KEY = Actor("key", 3, "sl_ab12")
MINE = {"managed_prompts", "prompt_labels", "audit_log"}


def _save(db: Database, project_id: int = 1, actor: Actor = ALICE, **body: object) -> object:
    return db.writer.write_sync(SavePrompt(project_id, parse_draft(body), actor))


def test_the_migrated_tables_are_the_tables_the_code_defines(database_url: str) -> None:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, t.metadata)
    ops = [op for diff in differences for op in (diff if isinstance(diff, list) else [diff])]
    assert [op for op in ops if any(name in str(op) for name in MINE)] == []
    engine.dispose()


def test_migration_0008_goes_down_and_up_again(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)
    for revision, down in (("head", False), ("0007", True), ("head", False)):
        config = alembic_config(engine.url.render_as_string(hide_password=False))
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(config, revision)
        assert set(inspect(engine).get_table_names()) >= MINE or revision == "0007"
        assert not MINE & set(inspect(engine).get_table_names()) or revision != "0007"
    engine.dispose()


def test_every_save_is_a_new_immutable_version_and_labels_move(db: Database) -> None:
    first = _save(db, name="greet", template="Hello {name}, {{literal}}", model="gpt-4o-mini")
    second = _save(
        db,
        name="greet",
        template="Hi {name} from {place}",
        parameters={"temperature": 0.2, "maxTokens": 50, "jsonMode": True},
        description="shorter",
    )
    # a settings-only change is a new version too, with the same content hash
    third = _save(
        db, actor=KEY, name="greet", template="Hi {name} from {place}", parameters={"temperature": 1}
    )
    assert [s.version for s in (first, second, third)] == [1, 2, 3]  # type: ignore[attr-defined]
    assert second.args == ["name", "place"]  # type: ignore[attr-defined]
    assert (
        second.template_version == third.template_version == template_version(None, "Hi {name} from {place}")
    )  # type: ignore[attr-defined]

    with db.read() as conn:
        latest = get_prompt(conn, 1, "greet")
        v1 = get_prompt(conn, 1, "greet", version=1)
        by_hash = get_prompt(conn, 1, "greet", version=second.template_version)  # type: ignore[attr-defined]
        assert get_prompt(conn, 1, "greet", version=9) is None
        assert get_prompt(conn, 2, "greet") is None  # another project sees nothing
    assert latest is not None and latest.version == 3 and latest.parameters == {"temperature": 1}
    assert latest.created_by == "key:sl_ab12"
    assert (
        v1 is not None and v1.model == "gpt-4o-mini" and v1.render({"name": "Ann"}) == "Hello Ann, {literal}"
    )
    assert by_hash is not None and by_hash.version == 3  # the newest version of that content

    assert db.writer.write_sync(MoveLabel(1, "greet", "production", 1, ALICE)) is None
    assert db.writer.write_sync(MoveLabel(1, "greet", "production", 2, ALICE)) == 1
    db.writer.write_sync(MoveLabel(1, "greet", "staging", 3, KEY))
    with db.read() as conn:
        prod = get_prompt(conn, 1, "greet", label="production")
        assert get_prompt(conn, 1, "greet", label="nope") is None
        log = audit_entries(conn, 1, action="prompt.label")
        saves = audit_entries(conn, 1, action="prompt.save")
        assert audit_entries(conn, 2) == []
    assert prod is not None and prod.version == 2 and prod.labels == ("production",)
    assert prod.request({"name": "A", "place": "B"}) == {
        "temperature": 0.2,
        "max_tokens": 50,
        "response_format": {"type": "json_object"},
        "messages": [{"role": "user", "content": "Hi A from B"}],
    }
    assert [(e.actor_kind, e.actor_name, e.details) for e in log] == [
        ("key", "sl_ab12", {"label": "staging", "from": None, "to": 3}),
        ("user", "alice", {"label": "production", "from": 1, "to": 2}),
        ("user", "alice", {"label": "production", "from": None, "to": 1}),
    ]
    assert log[-1].client == "10.0.0.7" and log[-1].target == "greet"
    assert [e.details["version"] for e in saves] == [3, 2, 1]

    with pytest.raises(NotFound, match="no version 7"):
        db.writer.write_sync(MoveLabel(1, "greet", "production", 7, ALICE))
    with pytest.raises(NotFound, match="no managed prompt"):
        db.writer.write_sync(MoveLabel(1, "other", "production", 1, ALICE))


def test_chat_prompts_render_exactly_their_arguments(db: Database) -> None:
    messages = [
        {"role": "system", "content": "You answer in {lang}."},
        {"role": "user", "content": "Translate: {text}"},
    ]
    _save(db, name="translate", messages=messages, model="gpt-4o")
    with db.read() as conn:
        p = get_prompt(conn, 1, "translate")
    assert p is not None and p.args == ["lang", "text"] and p.messages == messages
    assert p.chat({"lang": "French", "text": "hi"})[1] == {"role": "user", "content": "Translate: hi"}
    with pytest.raises(TemplateError, match="'text' is missing") as missing:
        p.chat({"lang": "French"})
    assert missing.value.field == "text"
    with pytest.raises(TemplateError, match="no argument 'extra'"):
        p.chat({"lang": "French", "text": "hi", "extra": 1})


def test_a_function_name_is_not_a_prompt_name(db: Database) -> None:
    with db.transaction() as conn:
        conn.execute(
            insert(t.functions).values(
                name="upper", source="sightline.pipelines.builtins", signature={}, registered_us=1
            )
        )
    with pytest.raises(Conflict, match="registered function") as refused:
        _save(db, name="upper", template="x")
    assert refused.value.field == "name"
    with db.read() as conn:
        assert prompt_names(conn, 1) == set()
        assert audit_entries(conn, 1) == []  # nothing written


def test_recorded_templates_show_beside_managed_versions(db: Database) -> None:
    with db.transaction() as conn:
        conn.execute(
            insert(t.prompt_versions).values(
                project_id=1,
                name="recorded_only",
                version=template_version(None, "Old {x}"),
                created_us=5,
                body={"text": "Old {x}"},
            )
        )
        conn.execute(
            insert(t.prompt_versions).values(
                project_id=1,
                name="greet",
                version=template_version(None, "SDK {y}"),
                created_us=5,
                body={"text": "SDK {y}"},
            )
        )
    _save(db, name="greet", template="Managed {y}")
    with db.read() as conn:
        names = prompt_names(conn, 1)
        history = prompt_history(conn, 1, "greet")
        summaries = {s.name: s for s in list_prompts(conn, 1)}
        only = get_prompt(conn, 1, "recorded_only")
    assert names == {"greet", "recorded_only"}
    assert [(p.version, p.text) for p in history] == [(1, "Managed {y}"), (None, "SDK {y}")]
    assert summaries["greet"].versions == 2 and summaries["greet"].latest == 1
    assert summaries["recorded_only"].latest is None and summaries["recorded_only"].recorded == 1
    assert only is not None and only.version is None and only.args == ["x"]
    assert only.render({"x": 1}) == "Old 1"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "1abc", "template": "x"}, "name"),
        ({"name": "a b", "template": "x"}, "name"),
        ({"name": "ok"}, "template"),
        ({"name": "ok", "template": "x", "messages": [{"role": "user", "content": "x"}]}, "template"),
        ({"name": "ok", "template": "{ x }"}, "template"),
        ({"name": "ok", "template": "{_x}"}, "template"),
        ({"name": "ok", "template": "a } b"}, "template"),
        ({"name": "ok", "template": 3}, "template"),
        ({"name": "ok", "template": "a\x00b"}, "template"),
        ({"name": "ok", "messages": []}, "messages"),
        ({"name": "ok", "messages": [{"role": "user"}]}, "messages"),
        ({"name": "ok", "messages": [{"role": "user", "content": "{1}"}]}, "messages[0].content"),
        ({"name": "ok", "template": "x", "parameters": {"temperature": 5}}, "parameters.temperature"),
        ({"name": "ok", "template": "x", "parameters": {"maxTokens": 0}}, "parameters.maxTokens"),
        ({"name": "ok", "template": "x", "parameters": {"jsonMode": "yes"}}, "parameters.jsonMode"),
        ({"name": "ok", "template": "x", "parameters": []}, "parameters"),
        ({"name": "ok", "template": "x", "model": 4}, "model"),
        ({"name": "ok", "template": "x", "colour": "red"}, "colour"),
    ],
)
def test_bad_drafts_name_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_draft(body)
    assert refused.value.field == field, refused.value.message


def test_two_servers_saving_one_name_at_once_get_distinct_versions(database_url: str) -> None:
    # Two Database objects: two writers, as two server processes on one PostgreSQL database have.
    first, second = Database(database_url), Database(database_url)
    first.start()
    second.start()
    try:
        futures = [
            (first if i % 2 else second).writer.submit(
                SavePrompt(1, parse_draft({"name": "busy", "template": f"take {i} {{x}}"}), KEY)
            )
            for i in range(12)
        ]
        versions = sorted(f.result(30).version for f in futures)
    finally:
        first.close()
        second.close()
    assert versions == list(range(1, 13))
