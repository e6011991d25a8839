"""Projects, environments, API keys and users; the install's own identity."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from .base import ShortText, metadata

projects = Table(
    "projects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", ShortText, nullable=False, unique=True),
    Column("created_us", BigInteger, nullable=False),
)

environments = Table(
    "environments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    UniqueConstraint("project_id", "name"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("environment", String(64), nullable=False),
    Column("name", ShortText, nullable=True),
    # Shown in listings so a person can tell keys apart; never enough to use the key.
    Column("prefix", String(16), nullable=False),
    # SHA-256 of the key: the key itself is printed once and never stored.
    Column("key_hash", String(64), nullable=False, unique=True),
    # First 16 hex characters of key_hash: how a feedback key names its API key.
    Column("key_ref", String(16), nullable=False, index=True),
    Column("created_us", BigInteger, nullable=False),
    Column("revoked_us", BigInteger, nullable=True),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", ShortText, nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
)

# A dashboard login. The cookie carries a random token; only its SHA-256 is stored here, so a
# reader of the database (or a backup) cannot take over a session. Deleting the row ends it.
sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False, index=True),
    Column("created_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=False, index=True),
)

# Failed logins, per account (``user:<name>``) and per client address (``addr:<ip>``): shared by
# every server process so a guesser cannot spread attempts over them.
login_throttle = Table(
    "login_throttle",
    metadata,
    Column("subject", String(200), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("last_failure_us", BigInteger, nullable=False),
    Column("locked_until_us", BigInteger, nullable=False),
)


# One row: this install's random id (made by migration 0013), the same for every process over this
# database. What the install keeps in shared places (Redis) is named under it, so two installs that
# share one Redis never read each other's cache entries, counters or lockouts.
install = Table(
    "install",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("created_us", BigInteger, nullable=False),
)
