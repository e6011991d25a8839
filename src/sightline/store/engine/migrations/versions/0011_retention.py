"""retention: one policy per project and environment

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 00:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retention_policies",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("after_days", sa.Integer(), nullable=False),
        sa.Column("done_until_us", sa.BigInteger(), nullable=False),
        sa.Column("done_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_run_us", sa.BigInteger(), nullable=True),
        sa.Column(
            "last_result", sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql"), nullable=True
        ),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_retention_policies_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("project_id", "environment", name=op.f("pk_retention_policies")),
    )


def downgrade() -> None:
    op.drop_table("retention_policies")
