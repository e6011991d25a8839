"""The gateway's response cache, as a table: durable, and shared by every server process.

Entries are keyed by project and request key (see ``sightline.gateway.caching.cachekey``) and hold the
upstream's JSON answer as text. Writes are operations for the single writer, like ingestion;
reads are plain selects. Expired entries are never answered and are deleted in bulk now and then.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, select

from .. import tables as t
from ..engine.dialect import upsert

__all__ = ["PurgeExpired", "StoreResponse", "cached_response"]


def cached_response(conn: Connection, project_id: int, key: str, now_us: int) -> tuple[str, int] | None:
    """``(response text, expires_us)`` of a live entry, or ``None``."""
    c = t.gateway_cache
    row = conn.execute(
        select(c.c.response, c.c.expires_us).where(
            c.c.project_id == project_id, c.c.key == key, c.c.expires_us > now_us
        )
    ).first()
    return (row.response, row.expires_us) if row is not None else None


@dataclass(slots=True)
class StoreResponse:
    """Write (or overwrite) one cache entry."""

    project_id: int
    key: str
    endpoint: str
    model: str | None
    response: str
    created_us: int
    expires_us: int
    size: int = 1

    def apply(self, conn: Connection) -> None:
        row = {
            "project_id": self.project_id,
            "key": self.key,
            "endpoint": self.endpoint[:200],
            "model": self.model[:200] if self.model else None,
            "created_us": self.created_us,
            "expires_us": self.expires_us,
            "response": self.response,
        }
        upsert(
            conn, t.gateway_cache, [row], update=["endpoint", "model", "created_us", "expires_us", "response"]
        )


@dataclass(slots=True)
class PurgeExpired:
    """Delete the entries that expired before ``now_us``; answers how many."""

    now_us: int
    size: int = 1

    def apply(self, conn: Connection) -> int:
        result = conn.execute(delete(t.gateway_cache).where(t.gateway_cache.c.expires_us <= self.now_us))
        return int(result.rowcount or 0)
