"""evals: scores (and their latest per name, their hourly totals), evaluators, datasets, experiments

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 23:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dataset_items",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column(
            "input", sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column(
            "expected_output",
            sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "metadata", sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("source_generation_id", sa.String(length=200), nullable=True),
        sa.Column("added_version", sa.Integer(), nullable=False),
        sa.Column("removed_version", sa.Integer(), nullable=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_items")),
    )
    op.create_index(
        op.f("ix_dataset_items_dataset_id_id"), "dataset_items", ["dataset_id", "id"], unique=False
    )
    op.create_table(
        "evaluator_versions",
        sa.Column("evaluator_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column(
            "config", sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("score_name", sa.String(length=100), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("evaluator_id", "version", name=op.f("pk_evaluator_versions")),
    )
    op.create_table(
        "experiment_items",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("generation_id", sa.String(length=200), nullable=True),
        sa.Column("run_id", sa.String(length=200), nullable=True),
        sa.Column(
            "output", sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql"), nullable=True
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("total_tokens", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("experiment_id", "item_id", name=op.f("pk_experiment_items")),
    )
    op.create_table(
        "rollup_scores",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("hour_us", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("labelled", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "project_id", "environment", "hour_us", "name", name=op.f("pk_rollup_scores")
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "score_latest",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("generation_id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("label", sa.String(length=100), nullable=True),
        sa.Column("score_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "generation_id", "name", name=op.f("pk_score_latest")),
        sqlite_with_rowid=False,
    )
    op.create_index(
        op.f("ix_score_latest_project_id_name_label"),
        "score_latest",
        ["project_id", "name", "label"],
        unique=False,
    )
    op.create_index(
        op.f("ix_score_latest_project_id_name_value"),
        "score_latest",
        ["project_id", "name", "value"],
        unique=False,
    )
    op.create_table(
        "scores",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("generation_id", sa.String(length=200), nullable=True),
        sa.Column("run_id", sa.String(length=200), nullable=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("label", sa.String(length=100), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("evaluator_id", sa.Integer(), nullable=True),
        sa.Column("evaluator_version", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("ts_us", sa.BigInteger(), nullable=False),
        sa.Column(
            "body", sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scores")),
    )
    op.create_index(op.f("ix_scores_evaluator_id_ts_us"), "scores", ["evaluator_id", "ts_us"], unique=False)
    op.create_index(
        op.f("ix_scores_project_id_generation_id"), "scores", ["project_id", "generation_id"], unique=False
    )
    op.create_index(
        op.f("ix_scores_project_id_run_id"),
        "scores",
        ["project_id", "run_id"],
        unique=False,
        sqlite_where=sa.text("run_id IS NOT NULL"),
        postgresql_where=sa.text("run_id IS NOT NULL"),
    )
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_datasets_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
        sa.UniqueConstraint("project_id", "name", name=op.f("uq_datasets_project_id_name")),
    )
    op.create_table(
        "evaluators",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column(
            "config", sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("score_name", sa.String(length=100), nullable=False),
        sa.Column(
            "filter", sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql"), nullable=True
        ),
        sa.Column("sample_rate", sa.Float(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("cursor_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_evaluators_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluators")),
        sa.UniqueConstraint("project_id", "name", name=op.f("uq_evaluators_project_id_name")),
    )
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("dataset_version", sa.Integer(), nullable=False),
        sa.Column(
            "target", sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column(
            "evaluator_ids",
            sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("finished_us", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_experiments_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiments")),
    )
    op.create_index(
        op.f("ix_experiments_project_id_created_us"),
        "experiments",
        ["project_id", "created_us"],
        unique=False,
    )


def downgrade() -> None:

    op.drop_index(op.f("ix_experiments_project_id_created_us"), table_name="experiments")
    op.drop_table("experiments")
    op.drop_table("evaluators")
    op.drop_table("datasets")
    op.drop_index(
        op.f("ix_scores_project_id_run_id"),
        table_name="scores",
        sqlite_where=sa.text("run_id IS NOT NULL"),
        postgresql_where=sa.text("run_id IS NOT NULL"),
    )
    op.drop_index(op.f("ix_scores_project_id_generation_id"), table_name="scores")
    op.drop_index(op.f("ix_scores_evaluator_id_ts_us"), table_name="scores")
    op.drop_table("scores")
    op.drop_index(op.f("ix_score_latest_project_id_name_value"), table_name="score_latest")
    op.drop_index(op.f("ix_score_latest_project_id_name_label"), table_name="score_latest")
    op.drop_table("score_latest")
    op.drop_table("rollup_scores")
    op.drop_table("experiment_items")
    op.drop_table("evaluator_versions")
    op.drop_index(op.f("ix_dataset_items_dataset_id_id"), table_name="dataset_items")
    op.drop_table("dataset_items")
