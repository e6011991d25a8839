"""install: this install's random id, naming what it keeps in a shared Redis

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 03:20:00
"""

from __future__ import annotations

import secrets
import time

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    install = op.create_table(
        "install",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_install")),
    )
    op.bulk_insert(install, [{"id": secrets.token_hex(16), "created_us": int(time.time() * 1_000_000)}])


def downgrade() -> None:
    op.drop_table("install")
