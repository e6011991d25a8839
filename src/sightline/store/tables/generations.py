"""Generations, their metadata rows, runs and feedback: the hot path's tables."""

from __future__ import annotations

from enum import IntEnum, auto

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    text,
)

from .base import Json, ShortText, metadata

# Generation ids are the client's (any text up to 200 characters), unique per project: two projects
# may hold the same id, so every key and lookup that names a generation also names its project.
generations = Table(
    "generations",
    metadata,
    Column("id", ShortText, nullable=False),
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
    PrimaryKeyConstraint("project_id", "id"),
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
    # Generations that got feedback, by time: feedback over time reads these few rows, not the range.
    Index(
        "ix_generations_feedback_ts",
        "project_id",
        "ts_us",
        sqlite_where=text("feedback_thumbs IS NOT NULL OR feedback_rating IS NOT NULL"),
        postgresql_where=text("feedback_thumbs IS NOT NULL OR feedback_rating IS NOT NULL"),
    ),
    # Generations of chats, by time: the chats list reads the latest of these, however rare among the rest.
    Index(
        "ix_generations_chat_ts",
        "project_id",
        "ts_us",
        sqlite_where=text("chat_id IS NOT NULL"),
        postgresql_where=text("chat_id IS NOT NULL"),
    ),
    # Not unique: the writer never repeats a number, and a unique index would make ingest's
    # ON CONFLICT DO NOTHING (or a restore into a database holding rows) drop a row silently.
    Index(None, "seq"),
)


class GenerationColumn(IntEnum):
    """The position of each column in a generations row held as a list, in the table's column order.

    Ingest holds a row so (cheaper to build, and to send to a writer process, than a dict), and reads
    and writes its cells by these names (``row[GenerationColumn.ts_us]``), which the type checker
    knows. A column appended to the table is a member appended here (a check below, and a test, fail
    on any difference), and a value at the end of the row ``records.generation_rows`` builds.
    """

    id = 0
    project_id = auto()
    environment = auto()
    ts_us = auto()
    model_id = auto()
    provider = auto()
    user_id = auto()
    session_id = auto()
    run_id = auto()
    chat_id = auto()
    step_index = auto()
    template_name = auto()
    template_version = auto()
    status = auto()
    error_type = auto()
    cache_hit = auto()
    output_type = auto()
    prompt_tokens = auto()
    completion_tokens = auto()
    total_tokens = auto()
    cost = auto()
    cost_saved = auto()
    latency_ms = auto()
    ttft_ms = auto()
    feedback_rating = auto()
    feedback_score = auto()
    feedback_thumbs = auto()
    body = auto()
    seq = auto()


GENERATION_COLUMNS: tuple[str, ...] = tuple(generations.c.keys())
if tuple(GenerationColumn.__members__) != GENERATION_COLUMNS:  # pragma: no cover - caught at import
    raise RuntimeError("GenerationColumn must list the generations table's columns in their order")
GENERATION_AT: dict[str, int] = {c.name: int(c) for c in GenerationColumn}

generation_metadata = Table(
    "generation_metadata",
    metadata,
    Column("generation_id", ShortText, nullable=False),
    Column("key", ShortText, nullable=False),
    Column("project_id", Integer, nullable=False),
    Column("value", Text, nullable=False),
    # Copied from the generation so a metadata filter pages newest-first from the index alone.
    Column("ts_us", BigInteger, nullable=False),
    PrimaryKeyConstraint("project_id", "generation_id", "key"),
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
    # Not a foreign key: feedback may arrive before its generation and waits for it. The latest is the
    # one received last (the highest id), whatever timestamp its client gave it.
    Column("generation_id", ShortText, nullable=False),
    Column("ts_us", BigInteger, nullable=False),
    Column("rating", Integer, nullable=True),
    Column("score", Float, nullable=True),
    Column("thumbs", String(4), nullable=True),
    Column("user_id", ShortText, nullable=True),
    Column("body", Json, nullable=False),
    Index(None, "project_id", "generation_id"),
    Index(None, "project_id", "ts_us"),
)

# The last number of each sequence handed out (the ingest sequence of generations: "generations").
sequences = Table(
    "sequences",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)
