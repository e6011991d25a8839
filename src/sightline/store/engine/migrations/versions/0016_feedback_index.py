"""feedback index: generations that got feedback, by time (feedback over time on the analytics page)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 07:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_GOT_FEEDBACK = "feedback_thumbs IS NOT NULL OR feedback_rating IS NOT NULL"


def upgrade() -> None:
    op.create_index(
        "ix_generations_feedback_ts",
        "generations",
        ["project_id", "ts_us"],
        sqlite_where=sa.text(_GOT_FEEDBACK),
        postgresql_where=sa.text(_GOT_FEEDBACK),
    )


def downgrade() -> None:
    op.drop_index("ix_generations_feedback_ts", table_name="generations")
