"""The database tables, in SQLAlchemy Core.

Columns hold what is filtered, sorted or grouped often (project, environment, time, model, user,
run, chat, template, status, tokens, cost, latency, latest feedback); the whole record is kept as
JSON (JSONB on PostgreSQL) in ``body`` so any field path can still be queried. Custom metadata is
also kept one row per key in ``generation_metadata`` so ``metadata.<key>=value`` filters use an
index instead of scanning JSON.

Times are integer microseconds since the Unix epoch (``*_us``): the same type and the same
arithmetic (time buckets, ranges) on every database.

The schema is created and changed only by the Alembic migrations in ``store/migrations``.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

__all__ = [
    "GENERATION_AT",
    "GENERATION_COLUMNS",
    "METADATA_COLUMNS",
    "PROMPT_COLUMNS",
    "api_keys",
    "environments",
    "feedback",
    "gateway_cache",
    "gateway_settings",
    "generation_metadata",
    "generations",
    "metadata",
    "projects",
    "prompt_versions",
    "providers",
    "rollup_daily_keys",
    "rollup_hourly",
    "rollup_latency",
    "runs",
    "users",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# JSON everywhere, stored as JSONB on PostgreSQL (smaller, indexable, faster to read a path).
Json = JSON().with_variant(JSONB(), "postgresql")
ShortText = String(200)

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

generations = Table(
    "generations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", Integer, nullable=False),
    Column("environment", String(64), nullable=False),
    Column("ts_us", BigInteger, nullable=False),
    Column("model_id", ShortText, nullable=False),
    Column("provider", ShortText, nullable=True),
    Column("user_id", ShortText, nullable=True),
    Column("session_id", ShortText, nullable=True),
    Column("run_id", ShortText, nullable=True),
    Column("chat_id", ShortText, nullable=True),
    Column("step_index", Integer, nullable=True),
    Column("template_name", ShortText, nullable=True),
    Column("template_version", ShortText, nullable=True),
    Column("status", String(8), nullable=False),
    Column("error_type", ShortText, nullable=True),
    Column("cache_hit", Boolean, nullable=False),
    Column("output_type", String(16), nullable=False),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("total_tokens", Integer, nullable=False),
    Column("cost", Float, nullable=True),
    Column("cost_saved", Float, nullable=True),
    Column("latency_ms", Float, nullable=False),
    Column("ttft_ms", Float, nullable=True),
    # The latest feedback, kept here so it can be filtered and shown without a join.
    Column("feedback_rating", Integer, nullable=True),
    Column("feedback_score", Float, nullable=True),
    Column("feedback_thumbs", String(4), nullable=True),
    Column("body", Json, nullable=False),
    # Newest-first listings of one project, alone or narrowed by the usual filters. The id in the
    # first makes the full (ts_us, id) order of pages and exports an index walk, with no sort; the
    # tokens in the third answer the tokens-by-model aggregate from the index alone.
    Index(None, "project_id", "ts_us", "id"),
    Index(None, "project_id", "user_id", "ts_us"),
    Index(None, "project_id", "model_id", "ts_us", "total_tokens"),
    Index(None, "project_id", "template_name", "ts_us"),
    Index(None, "project_id", "status", "ts_us"),
    # Most generations belong to no run or chat: partial indexes cost those rows nothing.
    Index(
        None, "run_id", sqlite_where=text("run_id IS NOT NULL"), postgresql_where=text("run_id IS NOT NULL")
    ),
    Index(
        None,
        "chat_id",
        sqlite_where=text("chat_id IS NOT NULL"),
        postgresql_where=text("chat_id IS NOT NULL"),
    ),
)

# Ingest holds a generations row as a list in the table's column order (cheaper to build, and to send
# to a writer process, than a dict): the position of each column in it.
GENERATION_COLUMNS: tuple[str, ...] = tuple(generations.c.keys())
GENERATION_AT: dict[str, int] = {name: i for i, name in enumerate(GENERATION_COLUMNS)}

generation_metadata = Table(
    "generation_metadata",
    metadata,
    Column("generation_id", String(36), primary_key=True),
    Column("key", ShortText, primary_key=True),
    Column("project_id", Integer, nullable=False),
    Column("value", Text, nullable=False),
    # Copied from the generation so a metadata filter pages newest-first from the index alone.
    Column("ts_us", BigInteger, nullable=False),
    Index(None, "project_id", "key", "value", "ts_us"),
    # Rows are found by their key: a separate rowid b-tree would be one more insert each.
    sqlite_with_rowid=False,
)

# The order of a generation_metadata row held as a tuple (records.metadata_rows).
METADATA_COLUMNS: tuple[str, ...] = tuple(generation_metadata.c.keys())

runs = Table(
    "runs",
    metadata,
    Column("project_id", Integer, primary_key=True),
    Column("id", ShortText, primary_key=True),
    Column("environment", String(64), nullable=False),
    Column("pipeline_slug", ShortText, nullable=True),
    Column("user_id", ShortText, nullable=True),
    Column("status", String(8), nullable=False),
    Column("started_us", BigInteger, nullable=False),
    Column("ended_us", BigInteger, nullable=True),
    # metadata, steps (non-model steps), error
    Column("body", Json, nullable=False),
    Index(None, "project_id", "started_us"),
    Index(None, "project_id", "user_id", "started_us"),
    Index(None, "project_id", "pipeline_slug", "started_us"),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project_id", Integer, nullable=False),
    # Not a foreign key: feedback may arrive before its generation and waits for it.
    Column("generation_id", String(36), nullable=False),
    Column("ts_us", BigInteger, nullable=False),
    Column("rating", Integer, nullable=True),
    Column("score", Float, nullable=True),
    Column("thumbs", String(4), nullable=True),
    Column("user_id", ShortText, nullable=True),
    Column("body", Json, nullable=False),
    Index(None, "generation_id", "ts_us"),
    Index(None, "project_id", "ts_us"),
)

prompt_versions = Table(
    "prompt_versions",
    metadata,
    Column("project_id", Integer, primary_key=True),
    Column("name", ShortText, primary_key=True),
    Column("version", ShortText, primary_key=True),
    Column("created_us", BigInteger, nullable=False),
    # {"chat": [...]} or {"text": "..."}: the template without its parameters.
    Column("body", Json, nullable=False),
)

# The order of a prompt_versions row held as a tuple (records.generation_rows).
PROMPT_COLUMNS: tuple[str, ...] = tuple(prompt_versions.c.keys())


# --- Gateway (migration 0002): upstream providers, per-project gateway settings, response cache ---

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
    # SHA-256 of the endpoint and the canonical request (see sightline.gateway.cachekey).
    Column("key", String(64), primary_key=True),
    Column("endpoint", ShortText, nullable=False),
    Column("model", ShortText, nullable=True),
    Column("created_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    # The upstream's JSON answer, as sent (text, not JSON: it goes back out byte for byte).
    Column("response", Text, nullable=False),
    Index(None, "expires_us"),
)


# --- Rollups (migration 0003): totals the writer keeps as it inserts, so analytics never scans rows ---

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
