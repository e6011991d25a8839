"""Pipelines (named expressions over prompts and functions) and the function registry."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, Table, Text, UniqueConstraint

from .base import Json, ShortText, metadata

# The functions an admin's sync registered (install-wide: they are files on the server). A pipeline may
# call only what is here; a prompt may not take one of these names (one namespace, see store.prompts).
functions = Table(
    "functions",
    metadata,
    Column("name", ShortText, primary_key=True),
    # "sightline.pipelines.builtins" or the custom_*.py file it came from.
    Column("source", ShortText, nullable=False),
    # {"params": [{"name", "kind", "type"?, "default"?}], "returns": type name or null}
    Column("signature", Json, nullable=False),
    Column("doc", Text, nullable=True),
    Column("registered_us", BigInteger, nullable=False),
)

# Named pipelines of a project: an expression over prompts and functions, and its arguments (free names).
pipelines = Table(
    "pipelines",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("name", ShortText, nullable=False),
    Column("expression", Text, nullable=False),
    Column("args", Json, nullable=False),
    Column("description", Text, nullable=True),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("updated_by", ShortText, nullable=True),
    UniqueConstraint("project_id", "name"),
)
