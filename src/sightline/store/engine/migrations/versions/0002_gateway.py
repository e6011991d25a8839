"""gateway: upstream providers, per-project gateway settings, response cache

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "providers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("base_url", sa.String(length=2000), nullable=False),
        sa.Column("api_key_encrypted", sa.Text(), nullable=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_providers_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_providers")),
        sa.UniqueConstraint("project_id", "name", name=op.f("uq_providers_project_id_name")),
    )
    op.create_table(
        "gateway_settings",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("default_provider_id", sa.Integer(), nullable=True),
        sa.Column("cache_mode", sa.String(length=8), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_gateway_settings_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_gateway_settings")),
    )
    op.create_table(
        "gateway_cache",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("endpoint", sa.String(length=200), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("expires_us", sa.BigInteger(), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "key", name=op.f("pk_gateway_cache")),
    )
    with op.batch_alter_table("gateway_cache", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gateway_cache_expires_us"), ["expires_us"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("gateway_cache", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gateway_cache_expires_us"))
    op.drop_table("gateway_cache")
    op.drop_table("gateway_settings")
    op.drop_table("providers")
