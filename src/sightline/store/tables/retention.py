"""Retention policies (migration 0011): what a project keeps, and for how long."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, PrimaryKeyConstraint, String, Table

from .base import Json, ShortText, metadata

__all__ = ["retention_policies"]

# One policy per project and environment ("" for every environment of the project): generations older
# than ``after_days`` are deleted, or anonymised (their content dropped, their figures kept).
retention_policies = Table(
    "retention_policies",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("environment", String(64), nullable=False),
    Column("action", String(10), nullable=False),  # "delete" or "anonymise"
    Column("after_days", Integer, nullable=False),
    # Anonymising: every generation older than this was anonymised (the time part of its cursor), and
    # the ingest sequence number written when that was so (generations that arrive later with an older
    # time are found by their number).
    Column("done_until_us", BigInteger, nullable=False),
    Column("done_seq", BigInteger, nullable=False),
    Column("last_run_us", BigInteger, nullable=True),
    Column("last_result", Json, nullable=True),
    Column("updated_us", BigInteger, nullable=False),
    Column("updated_by", ShortText, nullable=True),
    PrimaryKeyConstraint("project_id", "environment"),
)
