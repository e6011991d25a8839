"""Prompt templates and their versions: what the SDK recorded, and the prompts people manage."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    String,
    Table,
    Text,
)

from .base import Json, ShortText, metadata

# Every template content seen under a name (recorded by the SDK or the gateway, or saved as a managed
# version), one row per content hash: sightline.templating.template_version.
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

# Managed prompts: every save is a new immutable row numbered 1, 2, 3... per name. Its content's hash
# (template_version) is the version generations made from it carry, since ingest hashes the template.
managed_prompts = Table(
    "managed_prompts",
    metadata,
    Column("project_id", Integer, primary_key=True),
    Column("name", ShortText, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("template_version", ShortText, nullable=False),
    # {"chat": [{"role", "content"}]} or {"text": "..."}, as saved.
    Column("body", Json, nullable=False),
    Column("args", Json, nullable=False),
    Column("model", ShortText, nullable=True),
    # camelCase, as on the wire: temperature, maxTokens, topP, jsonMode, and any other key.
    Column("parameters", Json, nullable=False),
    Column("description", Text, nullable=True),
    Column("created_us", BigInteger, nullable=False),
    Column("created_by", ShortText, nullable=True),
)

# One version per label per prompt (production, staging, anything); moving one is audited.
prompt_labels = Table(
    "prompt_labels",
    metadata,
    Column("project_id", Integer, primary_key=True),
    Column("name", ShortText, primary_key=True),
    Column("label", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("updated_by", ShortText, nullable=True),
)
