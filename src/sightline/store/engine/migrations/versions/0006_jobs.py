"""jobs: the background job queue, and the ingest sequence of generations

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 08:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=True),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column(
            "payload", sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column(
            "result", sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql"), nullable=True
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("due_us", sa.BigInteger(), nullable=False),
        sa.Column("worker", sa.String(length=100), nullable=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("started_us", sa.BigInteger(), nullable=True),
        sa.Column("finished_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("key", name=op.f("uq_jobs_key")),
    )
    op.create_index(op.f("ix_jobs_state_due_us"), "jobs", ["state", "due_us"], unique=False)

    # The ingest sequence (store/generations/sequence.py): a column appended to generations (no table
    # rebuild on SQLite), the rows already there numbered in (timestamp, id) order, and the counter.
    op.add_column("generations", sa.Column("seq", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE generations SET seq = numbered.n FROM (SELECT project_id, id, "
        "ROW_NUMBER() OVER (ORDER BY ts_us, id, project_id) AS n FROM generations) AS numbered "
        "WHERE generations.project_id = numbered.project_id AND generations.id = numbered.id"
    )
    op.create_index(op.f("ix_generations_seq"), "generations", ["seq"], unique=False)
    op.create_table(
        "sequences",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sequences")),
    )
    op.execute(
        "INSERT INTO sequences (name, value) SELECT 'generations', COALESCE(MAX(seq), 0) FROM generations"
    )


def downgrade() -> None:
    op.drop_table("sequences")
    op.drop_index(op.f("ix_generations_seq"), table_name="generations")
    # SQLite drops the column in place (3.35+): no rebuild of the biggest table.
    with op.batch_alter_table("generations", recreate="never") as batch_op:
        batch_op.drop_column("seq")
    op.drop_index(op.f("ix_jobs_state_due_us"), table_name="jobs")
    op.drop_table("jobs")
