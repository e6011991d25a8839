"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21 00:19:04.626440
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("generation_id", sa.String(length=36), nullable=False),
        sa.Column("ts_us", sa.BigInteger(), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("thumbs", sa.String(length=4), nullable=True),
        sa.Column("user_id", sa.String(length=200), nullable=True),
        sa.Column(
            "body",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
    )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_feedback_generation_id_ts_us"), ["generation_id", "ts_us"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_feedback_project_id_ts_us"), ["project_id", "ts_us"], unique=False
        )

    op.create_table(
        "generation_metadata",
        sa.Column("generation_id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("ts_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("generation_id", "key", name=op.f("pk_generation_metadata")),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("generation_metadata", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_generation_metadata_project_id_key_value_ts_us"),
            ["project_id", "key", "value", "ts_us"],
            unique=False,
        )

    op.create_table(
        "generations",
        sa.Column("id", sa.String(length=36), nullable=False),
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
        sa.Column(
            "body",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_generations")),
    )
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_generations_chat_id"),
            ["chat_id"],
            unique=False,
            sqlite_where=sa.text("chat_id IS NOT NULL"),
            postgresql_where=sa.text("chat_id IS NOT NULL"),
        )
        batch_op.create_index(
            batch_op.f("ix_generations_project_id_model_id_ts_us_total_tokens"),
            ["project_id", "model_id", "ts_us", "total_tokens"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_generations_project_id_status_ts_us"),
            ["project_id", "status", "ts_us"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_generations_project_id_template_name_ts_us"),
            ["project_id", "template_name", "ts_us"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_generations_project_id_ts_us_id"), ["project_id", "ts_us", "id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_generations_project_id_user_id_ts_us"),
            ["project_id", "user_id", "ts_us"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_generations_run_id"),
            ["run_id"],
            unique=False,
            sqlite_where=sa.text("run_id IS NOT NULL"),
            postgresql_where=sa.text("run_id IS NOT NULL"),
        )

    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("name", name=op.f("uq_projects_name")),
    )
    op.create_table(
        "prompt_versions",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=200), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column(
            "body",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("project_id", "name", "version", name=op.f("pk_prompt_versions")),
    )
    op.create_table(
        "runs",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("pipeline_slug", sa.String(length=200), nullable=True),
        sa.Column("user_id", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("started_us", sa.BigInteger(), nullable=False),
        sa.Column("ended_us", sa.BigInteger(), nullable=True),
        sa.Column(
            "body",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("project_id", "id", name=op.f("pk_runs")),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_runs_project_id_pipeline_slug_started_us"),
            ["project_id", "pipeline_slug", "started_us"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_runs_project_id_started_us"), ["project_id", "started_us"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_runs_project_id_user_id_started_us"),
            ["project_id", "user_id", "started_us"],
            unique=False,
        )

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("key_ref", sa.String(length=16), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("revoked_us", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_api_keys_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_key_ref"), ["key_ref"], unique=False)

    op.create_table(
        "environments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_environments_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_environments")),
        sa.UniqueConstraint("project_id", "name", name=op.f("uq_environments_project_id_name")),
    )


def downgrade() -> None:
    op.drop_table("environments")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_key_ref"))

    op.drop_table("api_keys")
    op.drop_table("users")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_project_id_user_id_started_us"))
        batch_op.drop_index(batch_op.f("ix_runs_project_id_started_us"))
        batch_op.drop_index(batch_op.f("ix_runs_project_id_pipeline_slug_started_us"))

    op.drop_table("runs")
    op.drop_table("prompt_versions")
    op.drop_table("projects")
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_generations_run_id"))
        batch_op.drop_index(batch_op.f("ix_generations_project_id_user_id_ts_us"))
        batch_op.drop_index(batch_op.f("ix_generations_project_id_ts_us_id"))
        batch_op.drop_index(batch_op.f("ix_generations_project_id_template_name_ts_us"))
        batch_op.drop_index(batch_op.f("ix_generations_project_id_status_ts_us"))
        batch_op.drop_index(batch_op.f("ix_generations_project_id_model_id_ts_us_total_tokens"))
        batch_op.drop_index(batch_op.f("ix_generations_chat_id"))

    op.drop_table("generations")
    with op.batch_alter_table("generation_metadata", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_generation_metadata_project_id_key_value_ts_us"))

    op.drop_table("generation_metadata")
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feedback_project_id_ts_us"))
        batch_op.drop_index(batch_op.f("ix_feedback_generation_id_ts_us"))

    op.drop_table("feedback")
