"""The audit log: who did what to which record, when, and from where."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table

from .base import Json, ShortText, metadata

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts_us", BigInteger, nullable=False),
    # None for install-wide actions (users, function sync).
    Column("project_id", Integer, nullable=True),
    # "user" (a dashboard session) or "key" (an API key), its id, and a name a person recognises
    # (the username, or the key's prefix: never enough to use it).
    Column("actor_kind", String(16), nullable=False),
    Column("actor_id", Integer, nullable=True),
    Column("actor_name", ShortText, nullable=True),
    Column("action", String(64), nullable=False),
    Column("target", ShortText, nullable=False),
    # What changed (e.g. a label's old and new version); never a secret, a prompt's text or a body.
    Column("details", Json, nullable=False),
    Column("client", String(64), nullable=True),
    Index(None, "project_id", "ts_us"),
)
