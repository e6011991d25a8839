"""The gateway's tables (migration 0002): upstream providers, per-project gateway settings, response cache."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from .base import ShortText, metadata

providers = Table(
    "providers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("base_url", String(2000), nullable=False),
    # A Fernet token (key derived from the secret key): the provider's API key is never stored in clear.
    Column("api_key_encrypted", Text, nullable=True),
    Column("created_us", BigInteger, nullable=False),
    UniqueConstraint("project_id", "name"),
)

gateway_settings = Table(
    "gateway_settings",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id"), primary_key=True),
    # Not a foreign key: removing the provider clears it in the same transaction.
    Column("default_provider_id", Integer, nullable=True),
    # use | skip; NULL: the gateway's default (skip on /v1, use on the AI-Eye endpoints).
    Column("cache_mode", String(8), nullable=True),
)

gateway_cache = Table(
    "gateway_cache",
    metadata,
    Column("project_id", Integer, primary_key=True),
    # SHA-256 of the endpoint and the canonical request (see sightline.gateway.caching.cachekey).
    Column("key", String(64), primary_key=True),
    Column("endpoint", ShortText, nullable=False),
    Column("model", ShortText, nullable=True),
    Column("created_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    # The upstream's JSON answer, as sent (text, not JSON: it goes back out byte for byte).
    Column("response", Text, nullable=False),
    Index(None, "expires_us"),
)
