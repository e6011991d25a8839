"""What each dashboard user keeps for themselves: saved views (named filter sets) and preferences."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint

from .base import Json, ShortText, metadata

# A named filter set of one list page ("generations", "runs", "chats"), the address's query string as
# the page reads it, kept per user and project: a view never shows another project's rows.
saved_views = Table(
    "saved_views",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("project_id", Integer, nullable=False),
    Column("page", String(32), nullable=False),
    Column("name", ShortText, nullable=False),
    Column("query", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    UniqueConstraint("user_id", "project_id", "page", "name"),
    Index(None, "user_id", "project_id", "page"),
)

# One preference of one user in one project (the columns of a list, say), its value as JSON.
user_preferences = Table(
    "user_preferences",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id"), primary_key=True),
    Column("project_id", Integer, primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("value", Json, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)
