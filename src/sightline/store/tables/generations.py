"""Generations, their metadata rows, runs and feedback: the hot path's tables."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    text,
)

from .base import Json, ShortText, metadata

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
    # The ingest sequence: numbered by the writer as it inserts, increasing in commit order (client
    # timestamps arrive late), so a consumer follows new rows from a cursor (generations/sequence.py).
    Column("seq", BigInteger, nullable=True),
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
    # Not unique: the writer never repeats a number, and a unique index would make ingest's
    # ON CONFLICT DO NOTHING (or a restore into a database holding rows) drop a row silently.
    Index(None, "seq"),
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

# The last number of each sequence handed out (the ingest sequence of generations: "generations").
sequences = Table(
    "sequences",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)
