"""prompts: managed prompts (versions with model and parameters), labels, and the audit log

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 11:30:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "managed_prompts",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("template_version", sa.String(length=200), nullable=False),
        sa.Column("body", _json(), nullable=False),
        sa.Column("args", _json(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("parameters", _json(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("project_id", "name", "version", name=op.f("pk_managed_prompts")),
    )
    op.create_table(
        "prompt_labels",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("project_id", "name", "label", name=op.f("pk_prompt_labels")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ts_us", sa.BigInteger(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor_name", sa.String(length=200), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("details", _json(), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_project_id_ts_us"), "audit_log", ["project_id", "ts_us"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_log_project_id_ts_us"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("prompt_labels")
    op.drop_table("managed_prompts")
