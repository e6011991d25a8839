"""Rate limits and budgets (migration 0012), and the usage counted against them."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, ForeignKey, Integer, PrimaryKeyConstraint, String, Table

from .base import ShortText, metadata

__all__ = ["limit_usage", "limits"]

# The limits of a project (key_id 0) or of one of its API keys. NULL: no such limit.
limits = Table(
    "limits",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("key_id", Integer, nullable=False),
    Column("requests_per_minute", Integer, nullable=True),
    Column("tokens_per_minute", BigInteger, nullable=True),
    Column("cost_per_day", Float, nullable=True),
    Column("cost_per_month", Float, nullable=True),
    # Per end user (the gateway's X-Sightline-User-Id), of the project row only.
    Column("user_requests_per_minute", Integer, nullable=True),
    Column("updated_us", BigInteger, nullable=False),
    Column("updated_by", ShortText, nullable=True),
    PrimaryKeyConstraint("project_id", "key_id"),
)

# Requests counted in a window ("rpm:p:<project>", "rpm:k:<key>", "rpm:u:<project>:<user>"), shared by
# every server process (Redis holds them instead when configured). Old windows are pruned.
limit_usage = Table(
    "limit_usage",
    metadata,
    Column("name", String(300), nullable=False),
    Column("window_us", BigInteger, nullable=False),
    Column("used", Float, nullable=False),
    PrimaryKeyConstraint("name", "window_us"),
    sqlite_with_rowid=False,
)
