"""partial indexes: generations that got feedback, and generations of chats, by time (feedback over
time on the analytics page; the chats list, whatever share of the traffic chats are)

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
_IN_A_CHAT = "chat_id IS NOT NULL"


def upgrade() -> None:
    op.create_index(
        "ix_generations_feedback_ts",
        "generations",
        ["project_id", "ts_us"],
        sqlite_where=sa.text(_GOT_FEEDBACK),
        postgresql_where=sa.text(_GOT_FEEDBACK),
    )
    op.create_index(
        "ix_generations_chat_ts",
        "generations",
        ["project_id", "ts_us"],
        sqlite_where=sa.text(_IN_A_CHAT),
        postgresql_where=sa.text(_IN_A_CHAT),
    )


def downgrade() -> None:
    op.drop_index("ix_generations_chat_ts", table_name="generations")
    op.drop_index("ix_generations_feedback_ts", table_name="generations")
