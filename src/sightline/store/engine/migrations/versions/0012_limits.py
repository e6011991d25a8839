"""limits: rate limits and budgets per project and API key, and the usage counted against them

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 00:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "limits",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("requests_per_minute", sa.Integer(), nullable=True),
        sa.Column("tokens_per_minute", sa.BigInteger(), nullable=True),
        sa.Column("cost_per_day", sa.Float(), nullable=True),
        sa.Column("cost_per_month", sa.Float(), nullable=True),
        sa.Column("user_requests_per_minute", sa.Integer(), nullable=True),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name=op.f("fk_limits_project_id_projects")),
        sa.PrimaryKeyConstraint("project_id", "key_id", name=op.f("pk_limits")),
    )
    op.create_table(
        "limit_usage",
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("window_us", sa.BigInteger(), nullable=False),
        sa.Column("used", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", "window_us", name=op.f("pk_limit_usage")),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("limit_usage")
    op.drop_table("limits")
