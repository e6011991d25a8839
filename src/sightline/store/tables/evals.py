"""Scores, evaluators, datasets and experiments (migration 0010)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from .base import Json, ShortText, metadata

__all__ = [
    "dataset_items",
    "datasets",
    "evaluator_versions",
    "evaluators",
    "experiment_items",
    "experiments",
    "rollup_scores",
    "score_latest",
    "scores",
]

# Every score ever given (history), human feedback included. Not a foreign key to its generation: a
# score may arrive before it, as feedback may. A row with an ``error`` and no value or label is an
# evaluation that failed (a judge's answer that could not be read): kept so it shows, never a score.
scores = Table(
    "scores",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project_id", Integer, nullable=False),
    Column("environment", String(64), nullable=False),
    Column("generation_id", ShortText, nullable=True),
    Column("run_id", ShortText, nullable=True),
    Column("name", String(100), nullable=False),
    Column("value", Float, nullable=True),
    Column("label", String(100), nullable=True),
    Column("comment", Text, nullable=True),
    Column("source", String(8), nullable=False),
    Column("evaluator_id", Integer, nullable=True),
    Column("evaluator_version", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("ts_us", BigInteger, nullable=False),
    # what else the score carries: the evaluator's name, the judge's own generation id, ...
    Column("body", Json, nullable=False),
    Index(None, "project_id", "generation_id"),
    Index(
        None,
        "project_id",
        "run_id",
        sqlite_where=text("run_id IS NOT NULL"),
        postgresql_where=text("run_id IS NOT NULL"),
    ),
    Index(None, "evaluator_id", "ts_us"),
)

# The latest score of each name on each generation: what filters (``scores.<name>``), sorts and
# aggregates read, one indexed row instead of a search through the history.
score_latest = Table(
    "score_latest",
    metadata,
    Column("project_id", Integer, nullable=False),
    Column("generation_id", ShortText, nullable=False),
    Column("name", String(100), nullable=False),
    Column("value", Float, nullable=True),
    Column("label", String(100), nullable=True),
    Column("score_id", Integer, nullable=False),
    PrimaryKeyConstraint("project_id", "generation_id", "name"),
    Index(None, "project_id", "name", "value"),
    Index(None, "project_id", "name", "label"),
    sqlite_with_rowid=False,
)

# Score totals per hour (of the score's time), kept by the writer as scores arrive: the trends of
# the analytics page read these, never the rows.
rollup_scores = Table(
    "rollup_scores",
    metadata,
    Column("project_id", Integer, primary_key=True),
    Column("environment", String(64), primary_key=True),
    Column("hour_us", BigInteger, primary_key=True),
    Column("name", String(100), primary_key=True),
    Column("count", BigInteger, nullable=False),  # scores with a value
    Column("total", Float, nullable=False),  # the sum of their values
    Column("labelled", BigInteger, nullable=False),  # scores with a label
    Column("errors", BigInteger, nullable=False),  # evaluations that failed
    sqlite_with_rowid=False,
)

# An evaluator's current definition (the newest version) and where online evaluation has got to.
evaluators = Table(
    "evaluators",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("name", ShortText, nullable=False),
    Column("version", Integer, nullable=False),
    Column("type", String(16), nullable=False),
    Column("config", Json, nullable=False),
    Column("score_name", String(100), nullable=False),
    # Online evaluation: the generations it takes (a MongoDB-style filter; NULL: none, backfills
    # only), the share of them, and the ingest sequence number of the last generation considered.
    Column("filter", Json, nullable=True),
    Column("sample_rate", Float, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("cursor_seq", BigInteger, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("updated_by", ShortText, nullable=True),
    UniqueConstraint("project_id", "name"),
)

# Every version of every evaluator, as it was defined: a score names the version that gave it.
evaluator_versions = Table(
    "evaluator_versions",
    metadata,
    Column("evaluator_id", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("type", String(16), nullable=False),
    Column("config", Json, nullable=False),
    Column("score_name", String(100), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("created_by", ShortText, nullable=True),
    PrimaryKeyConstraint("evaluator_id", "version"),
)

# A named, versioned set of items. Every change makes a new version; an item belongs to the versions
# from the one that added it up to (not including) the one that removed it.
datasets = Table(
    "datasets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("name", ShortText, nullable=False),
    Column("version", Integer, nullable=False),
    Column("description", Text, nullable=True),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    UniqueConstraint("project_id", "name"),
)

dataset_items = Table(
    "dataset_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dataset_id", Integer, nullable=False),
    Column("input", Json, nullable=False),
    Column("expected_output", Json, nullable=True),
    Column("metadata", Json, nullable=False),
    # the generation it was taken from, when it was
    Column("source_generation_id", ShortText, nullable=True),
    Column("added_version", Integer, nullable=False),
    Column("removed_version", Integer, nullable=True),
    Column("created_us", BigInteger, nullable=False),
    Index(None, "dataset_id", "id"),
)

# A prompt version or pipeline run over a dataset's items, each result evaluated.
experiments = Table(
    "experiments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("name", ShortText, nullable=False),
    Column("dataset_id", Integer, nullable=False),
    Column("dataset_version", Integer, nullable=False),
    # {"prompt": name, "version"?, "label"?, "model"?} or {"pipeline": name}, and the evaluator ids
    Column("target", Json, nullable=False),
    Column("evaluator_ids", Json, nullable=False),
    Column("status", String(10), nullable=False),
    Column("job_id", Integer, nullable=True),
    Column("created_us", BigInteger, nullable=False),
    Column("finished_us", BigInteger, nullable=True),
    Index(None, "project_id", "created_us"),
)

experiment_items = Table(
    "experiment_items",
    metadata,
    Column("experiment_id", Integer, nullable=False),
    Column("item_id", Integer, nullable=False),
    # the call it made (a prompt's generation) or the run (a pipeline's), scored as any other
    Column("generation_id", ShortText, nullable=True),
    Column("run_id", ShortText, nullable=True),
    Column("output", Json, nullable=True),
    Column("error", Text, nullable=True),
    Column("latency_ms", Float, nullable=True),
    Column("cost", Float, nullable=True),
    Column("total_tokens", Integer, nullable=True),
    PrimaryKeyConstraint("experiment_id", "item_id"),
)
