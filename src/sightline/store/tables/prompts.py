"""Prompt templates and their versions."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    Table,
)

from .base import Json, ShortText, metadata

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
