"""What every table shares: the metadata (with its naming convention) and the column types."""

from __future__ import annotations

from sqlalchemy import JSON, MetaData, String
from sqlalchemy.dialects.postgresql import JSONB

__all__ = ["Json", "ShortText", "metadata"]

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
