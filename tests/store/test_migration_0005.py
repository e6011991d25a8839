"""Migration 0005: generation ids unique per project, up to 200 characters, on a database with data in it."""

from __future__ import annotations

import uuid

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from sightline.store import tables as t
from sightline.store.engine.migrate import alembic_config

OURS = {"generations", "generation_metadata", "feedback"}


def _to(engine: Engine, revision: str, down: bool = False) -> None:
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)


def _generation(conn: Connection, gen_id: str, project_id: int) -> None:
    conn.execute(
        text(
            "INSERT INTO generations (id, project_id, environment, ts_us, model_id, status, cache_hit, "
            "output_type, prompt_tokens, completion_tokens, total_tokens, latency_ms, feedback_thumbs, body) "
            "VALUES (:id, :p, 'dev', 1000, 'gpt-4o', 'ok', false, 'text', 1, 2, 3, 4.5, 'up', :body)"
        ),
        {"id": gen_id, "p": project_id, "body": f'{{"id": "{gen_id}"}}'},
    )
    conn.execute(
        text(
            "INSERT INTO generation_metadata (generation_id, key, project_id, value, ts_us) "
            "VALUES (:id, 'plan', :p, 'pro', 1000)"
        ),
        {"id": gen_id, "p": project_id},
    )
    conn.execute(
        text(
            "INSERT INTO feedback (project_id, generation_id, ts_us, thumbs, body) "
            "VALUES (:p, :id, 1000, 'up', '{}')"
        ),
        {"id": gen_id, "p": project_id},
    )


def _keys(engine: Engine) -> dict[str, list[str]]:
    found = inspect(engine)
    return {name: found.get_pk_constraint(name)["constrained_columns"] for name in sorted(OURS)}


def test_ids_become_unique_per_project_and_the_rows_stay(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)
    _to(engine, "0004")
    ids = [str(uuid.uuid4()) for _ in range(3)]
    with engine.begin() as conn:
        for gen_id in ids:
            _generation(conn, gen_id, 1)
    assert _keys(engine)["generations"] == ["id"]

    _to(engine, "0005")
    assert _keys(engine) == {
        "feedback": ["id"],
        "generation_metadata": ["project_id", "generation_id", "key"],
        "generations": ["project_id", "id"],
    }
    with engine.begin() as conn:
        kept = conn.execute(text("SELECT id, project_id, total_tokens, feedback_thumbs FROM generations"))
        assert sorted(kept) == sorted((gen_id, 1, 3, "up") for gen_id in ids)
        assert conn.scalar(text("SELECT COUNT(*) FROM generation_metadata WHERE value = 'pro'")) == 3
        assert conn.scalar(text("SELECT COUNT(*) FROM feedback WHERE thumbs = 'up'")) == 3
        # the same id in another project, and a long id that is no UUID
        _generation(conn, ids[0], 2)
        _generation(conn, "g" * 200, 1)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        _generation(conn, ids[0], 2)  # but not twice in one project
    indexes = {ix["name"]: ix["column_names"] for ix in inspect(engine).get_indexes("feedback")}
    assert indexes["ix_feedback_project_id_generation_id"] == ["project_id", "generation_id"]
    assert "ix_feedback_generation_id_ts_us" not in indexes
    if engine.dialect.name == "sqlite":  # the rebuilt tables keep their partial indexes and layout
        with engine.connect() as conn:
            sql = dict(conn.execute(text("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL")).all())
        assert "WHERE run_id IS NOT NULL" in sql["ix_generations_run_id"]
        assert "WHERE chat_id IS NOT NULL" in sql["ix_generations_chat_id"]
        assert "WITHOUT ROWID" in sql["generation_metadata"]
    engine.dispose()


def test_the_downgrade_refuses_ids_the_old_schema_cannot_hold_then_restores_it(
    empty_database_url: str,
) -> None:
    engine = create_engine(empty_database_url)
    _to(engine, "0005")
    shared = str(uuid.uuid4())
    with engine.begin() as conn:
        _generation(conn, shared, 1)
        _generation(conn, shared, 2)
        _generation(conn, "generation-123", 1)
    with pytest.raises(RuntimeError, match="more than one project"):
        _to(engine, "0004", down=True)
    assert _keys(engine)["generations"] == ["project_id", "id"]  # nothing changed
    with engine.begin() as conn:
        for table, column in (("generations", "project_id"), ("generation_metadata", "project_id")):
            conn.execute(text(f"DELETE FROM {table} WHERE {column} = 2"))
    _to(engine, "0004", down=True)
    assert _keys(engine) == {
        "feedback": ["id"],
        "generation_metadata": ["generation_id", "key"],
        "generations": ["id"],
    }
    with engine.begin() as conn:
        assert sorted(conn.scalars(text("SELECT id FROM generations"))) == sorted([shared, "generation-123"])
    _to(engine, "head")
    engine.dispose()


def _table(op: tuple[object, ...]) -> str | None:
    """The table an autogenerate difference is about."""
    kind = str(op[0])
    if kind.startswith("modify_") or kind.endswith("_column"):
        return str(op[2])
    return getattr(getattr(op[1], "table", op[1]), "name", None)


def test_the_migrated_tables_are_the_tables_the_code_defines(database_url: str) -> None:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, t.metadata)
    ops = [op for diff in differences for op in (diff if isinstance(diff, list) else [diff])]
    assert [op for op in ops if _table(op) in OURS] == []
    # autogenerate does not compare primary keys
    assert _keys(engine) == {name: list(t.metadata.tables[name].primary_key.columns.keys()) for name in OURS}
    engine.dispose()
