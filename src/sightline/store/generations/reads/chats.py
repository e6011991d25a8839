"""What each chat adds up to: its turns, their cost and tokens, its cache hits and its last activity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, case, func, select

from ... import tables as t

__all__ = ["ChatTotals", "chat_totals"]

_CHUNK = 500  # ids in one IN (...) list
g = t.generations


@dataclass(frozen=True, slots=True)
class ChatTotals:
    """One chat's whole history (``cost`` is ``None`` when none of its turns was priced)."""

    turns: int
    cost: float | None
    tokens: int
    cache_hits: int
    last_us: int


def chat_totals(conn: Connection, project_id: int, chat_ids: Sequence[str]) -> dict[str, ChatTotals]:
    """``{chat id: its totals}`` of the chats given, in one grouped query per 500 ids (the chat id index)."""
    out: dict[str, ChatTotals] = {}
    ids = sorted(set(chat_ids))
    for i in range(0, len(ids), _CHUNK):
        q = (
            select(
                g.c.chat_id,
                func.count(),
                func.sum(g.c.cost),
                func.coalesce(func.sum(g.c.total_tokens), 0),
                func.sum(case((g.c.cache_hit.is_(True), 1), else_=0)),
                func.max(g.c.ts_us),
            )
            .where(g.c.project_id == project_id, g.c.chat_id.in_(ids[i : i + _CHUNK]))
            .group_by(g.c.chat_id)
        )
        for chat_id, n, cost, tokens, hits, last in conn.execute(q):
            out[chat_id] = ChatTotals(
                int(n), float(cost) if cost is not None else None, int(tokens), int(hits or 0), int(last)
            )
    return out
