"""project ids: generation ids unique per project, up to 200 characters

A generation's id is the client's: any text up to 200 characters, unique within its project. Before
this revision it was a UUID (36 characters) and the primary key of ``generations`` alone, so project
B writing an id that project A held was told "already there" and its record was dropped. Now:

* ``generations``: primary key (project_id, id); ``id`` up to 200 characters;
* ``generation_metadata``: primary key (project_id, generation_id, key);
* ``feedback``: ``generation_id`` up to 200 characters, found by (project_id, generation_id) (the
  latest feedback is the one received last, its highest ``id``, so the index no longer holds the
  client's timestamp).

SQLite rebuilds each table (``batch_alter_table``: a copy of the rows, in one transaction);
PostgreSQL alters them in place. The tables are described as they are here (``copy_from``), so
SQLite's rebuild keeps the partial indexes and the WITHOUT ROWID layout exactly.

The downgrade restores the old keys; it refuses (and changes nothing) while some id is longer than 36
characters or held by two projects, which the old schema cannot store.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 08:30:00
"""

from __future__ import annotations

from typing import NamedTuple

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _generations(id_length: int, key: tuple[str, ...]) -> sa.Table:
    """``generations`` as revisions 0001-0004 left it, with ``id`` and the primary key given."""
    return sa.Table(
        "generations",
        sa.MetaData(),
        sa.Column("id", sa.String(length=id_length), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("ts_us", sa.BigInteger(), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("provider", sa.String(length=200), nullable=True),
        sa.Column("user_id", sa.String(length=200), nullable=True),
        sa.Column("session_id", sa.String(length=200), nullable=True),
        sa.Column("run_id", sa.String(length=200), nullable=True),
        sa.Column("chat_id", sa.String(length=200), nullable=True),
        sa.Column("step_index", sa.Integer(), nullable=True),
        sa.Column("template_name", sa.String(length=200), nullable=True),
        sa.Column("template_version", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("error_type", sa.String(length=200), nullable=True),
        sa.Column("cache_hit", sa.Boolean(), nullable=False),
        sa.Column("output_type", sa.String(length=16), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("total_tokens", sa.Integer(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("cost_saved", sa.Float(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("feedback_rating", sa.Integer(), nullable=True),
        sa.Column("feedback_score", sa.Float(), nullable=True),
        sa.Column("feedback_thumbs", sa.String(length=4), nullable=True),
        sa.Column("body", _JSON, nullable=False),
        sa.PrimaryKeyConstraint(*key, name="pk_generations"),
        sa.Index("ix_generations_project_id_ts_us_id", "project_id", "ts_us", "id"),
        sa.Index("ix_generations_project_id_user_id_ts_us", "project_id", "user_id", "ts_us"),
        sa.Index(
            "ix_generations_project_id_model_id_ts_us_total_tokens",
            "project_id",
            "model_id",
            "ts_us",
            "total_tokens",
        ),
        sa.Index("ix_generations_project_id_template_name_ts_us", "project_id", "template_name", "ts_us"),
        sa.Index("ix_generations_project_id_status_ts_us", "project_id", "status", "ts_us"),
        sa.Index(
            "ix_generations_run_id",
            "run_id",
            sqlite_where=sa.text("run_id IS NOT NULL"),
            postgresql_where=sa.text("run_id IS NOT NULL"),
        ),
        sa.Index(
            "ix_generations_chat_id",
            "chat_id",
            sqlite_where=sa.text("chat_id IS NOT NULL"),
            postgresql_where=sa.text("chat_id IS NOT NULL"),
        ),
    )


def _generation_metadata(id_length: int, key: tuple[str, ...]) -> sa.Table:
    return sa.Table(
        "generation_metadata",
        sa.MetaData(),
        sa.Column("generation_id", sa.String(length=id_length), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("ts_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(*key, name="pk_generation_metadata"),
        sa.Index("ix_generation_metadata_project_id_key_value_ts_us", "project_id", "key", "value", "ts_us"),
        sqlite_with_rowid=False,
    )


def _feedback(id_length: int, index: tuple[str, tuple[str, ...]]) -> sa.Table:
    return sa.Table(
        "feedback",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("generation_id", sa.String(length=id_length), nullable=False),
        sa.Column("ts_us", sa.BigInteger(), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("thumbs", sa.String(length=4), nullable=True),
        sa.Column("user_id", sa.String(length=200), nullable=True),
        sa.Column("body", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_feedback"),
        sa.Index(index[0], *index[1]),
        sa.Index("ix_feedback_project_id_ts_us", "project_id", "ts_us"),
    )


class _Shape(NamedTuple):
    """What this revision changes, on either side of it."""

    id_length: int
    generations_key: tuple[str, ...]
    metadata_key: tuple[str, ...]
    feedback_index: tuple[str, tuple[str, ...]]


_BEFORE = _Shape(
    36, ("id",), ("generation_id", "key"), ("ix_feedback_generation_id_ts_us", ("generation_id", "ts_us"))
)
_AFTER = _Shape(
    200,
    ("project_id", "id"),
    ("project_id", "generation_id", "key"),
    ("ix_feedback_project_id_generation_id", ("project_id", "generation_id")),
)


def _reshape(old: _Shape, new: _Shape) -> None:
    """Give the three tables the id length, primary keys and feedback index of ``new``."""
    old_type, new_type = sa.String(length=old.id_length), sa.String(length=new.id_length)
    with op.batch_alter_table(
        "generations", copy_from=_generations(old.id_length, old.generations_key)
    ) as batch:
        batch.alter_column("id", type_=new_type, existing_type=old_type, existing_nullable=False)
        batch.drop_constraint("pk_generations", type_="primary")
        batch.create_primary_key("pk_generations", list(new.generations_key))
    with op.batch_alter_table(
        "generation_metadata",
        copy_from=_generation_metadata(old.id_length, old.metadata_key),
        table_kwargs={"sqlite_with_rowid": False},
    ) as batch:
        batch.alter_column("generation_id", type_=new_type, existing_type=old_type, existing_nullable=False)
        batch.drop_constraint("pk_generation_metadata", type_="primary")
        batch.create_primary_key("pk_generation_metadata", list(new.metadata_key))
    with op.batch_alter_table("feedback", copy_from=_feedback(old.id_length, old.feedback_index)) as batch:
        batch.alter_column("generation_id", type_=new_type, existing_type=old_type, existing_nullable=False)
        batch.drop_index(old.feedback_index[0])
        batch.create_index(new.feedback_index[0], list(new.feedback_index[1]))


def upgrade() -> None:
    _reshape(_BEFORE, _AFTER)


def downgrade() -> None:
    conn = op.get_bind()
    problems = []
    for table, column in (
        ("generations", "id"),
        ("generation_metadata", "generation_id"),
        ("feedback", "generation_id"),
    ):
        longer = conn.scalar(sa.text(f"SELECT COUNT(*) FROM {table} WHERE LENGTH({column}) > 36"))
        if longer:
            problems.append(f"{longer} rows of {table} have an id longer than 36 characters")
    shared = conn.scalar(
        sa.text("SELECT COUNT(*) FROM (SELECT id FROM generations GROUP BY id HAVING COUNT(*) > 1) AS s")
    )
    if shared:
        problems.append(f"{shared} generation ids are held by more than one project")
    if problems:
        raise RuntimeError(
            "cannot downgrade below 0005: " + "; ".join(problems) + " (the old schema cannot store them)"
        )
    _reshape(_AFTER, _BEFORE)
