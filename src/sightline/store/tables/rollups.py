"""Totals the writer keeps as it inserts (migration 0003), so analytics never scans rows."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    String,
    Table,
)

from .base import ShortText, metadata

rollup_hourly = Table(
    "rollup_hourly",
    metadata,
    Column("project_id", Integer, primary_key=True),
    Column("environment", String(64), primary_key=True),
    Column("hour_us", BigInteger, primary_key=True),
    Column("model_id", ShortText, primary_key=True),
    Column("requests", BigInteger, nullable=False),
    Column("prompt_tokens", BigInteger, nullable=False),
    Column("completion_tokens", BigInteger, nullable=False),
    Column("cost", Float, nullable=False),
    Column("errors", BigInteger, nullable=False),
    Column("cache_hits", BigInteger, nullable=False),
    Column("cost_saved", Float, nullable=False),
    Column("unpriced", BigInteger, nullable=False),
    sqlite_with_rowid=False,
)

rollup_latency = Table(
    "rollup_latency",
    metadata,
    Column("project_id", Integer, primary_key=True),
    Column("environment", String(64), primary_key=True),
    Column("hour_us", BigInteger, primary_key=True),
    # "latency" or "ttft"; bin: the histogram bin of store.rollups.latency_bin
    Column("measure", String(8), primary_key=True),
    Column("bin", Integer, primary_key=True),
    Column("count", BigInteger, nullable=False),
    sqlite_with_rowid=False,
)

rollup_daily_keys = Table(
    "rollup_daily_keys",
    metadata,
    Column("project_id", Integer, primary_key=True),
    Column("environment", String(64), primary_key=True),
    Column("day_us", BigInteger, primary_key=True),
    # "user" or "template", and the user id or template name
    Column("kind", String(8), primary_key=True),
    Column("key", ShortText, primary_key=True),
    Column("requests", BigInteger, nullable=False),
    Column("cost", Float, nullable=False),
    Column("tokens", BigInteger, nullable=False),
    sqlite_with_rowid=False,
)
