"""rollups: hourly totals, latency histograms and daily user/template totals, kept by the writer

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 01:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_MS = "CAST({column} AS BIGINT)"
# store.rollups.latency_bin in SQL: 10 ms bins under 1 s, 100 ms under 10 s, 1 s under 100 s, 10 s above
_BIN = (
    "CASE WHEN {ms} < 1000 THEN {ms} / 10 WHEN {ms} < 10000 THEN 100 + ({ms} - 1000) / 100 "
    "WHEN {ms} < 100000 THEN 190 + ({ms} - 10000) / 1000 ELSE 280 + ({ms} - 100000) / 10000 END"
)


def upgrade() -> None:
    op.create_table(
        "rollup_hourly",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("hour_us", sa.BigInteger(), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("cache_hits", sa.BigInteger(), nullable=False),
        sa.Column("cost_saved", sa.Float(), nullable=False),
        sa.Column("unpriced", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "project_id", "environment", "hour_us", "model_id", name=op.f("pk_rollup_hourly")
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "rollup_latency",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("hour_us", sa.BigInteger(), nullable=False),
        sa.Column("measure", sa.String(length=8), nullable=False),
        sa.Column("bin", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "project_id", "environment", "hour_us", "measure", "bin", name=op.f("pk_rollup_latency")
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "rollup_daily_keys",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("day_us", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "project_id", "environment", "day_us", "kind", "key", name=op.f("pk_rollup_daily_keys")
        ),
        sqlite_with_rowid=False,
    )
    # Totals of the generations already stored.
    op.execute(
        "INSERT INTO rollup_hourly SELECT project_id, environment, ts_us - ts_us % 3600000000, model_id, "
        "COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), COALESCE(SUM(cost), 0), "
        "SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), SUM(CASE WHEN cache_hit THEN 1 ELSE 0 END), "
        "COALESCE(SUM(cost_saved), 0), SUM(CASE WHEN cost IS NULL THEN 1 ELSE 0 END) "
        "FROM generations GROUP BY project_id, environment, ts_us - ts_us % 3600000000, model_id"
    )
    for measure, column in (("latency", "latency_ms"), ("ttft", "ttft_ms")):
        bin_ = _BIN.format(ms=_MS.format(column=column))
        op.execute(
            f"INSERT INTO rollup_latency SELECT project_id, environment, ts_us - ts_us % 3600000000, "
            f"'{measure}', {bin_}, COUNT(*) FROM generations WHERE {column} IS NOT NULL AND NOT cache_hit "
            f"GROUP BY project_id, environment, ts_us - ts_us % 3600000000, {bin_}"
        )
    for kind, column in (("user", "user_id"), ("template", "template_name")):
        op.execute(
            f"INSERT INTO rollup_daily_keys SELECT project_id, environment, ts_us - ts_us % 86400000000, "
            f"'{kind}', {column}, COUNT(*), COALESCE(SUM(cost), 0), SUM(total_tokens) FROM generations "
            f"WHERE {column} IS NOT NULL "
            f"GROUP BY project_id, environment, ts_us - ts_us % 86400000000, {column}"
        )


def downgrade() -> None:
    op.drop_table("rollup_daily_keys")
    op.drop_table("rollup_latency")
    op.drop_table("rollup_hourly")
