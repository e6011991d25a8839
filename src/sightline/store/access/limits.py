"""Rate limits and budgets: their settings, and the shared counters requests are taken from.

A project (``key_id`` 0) or one API key has any of: requests per minute, tokens per minute, cost per
day and cost per month, and the project requests per minute per end user. Requests are counted in
``limit_usage`` (one row a name and minute) by :class:`TakeRequests`: one atomic statement that grants
at most what is left, so processes taking at once never grant more than the limit between them.
Tokens and cost are what the project's generations used, read from the rows and the hourly rollups
(every road counts: SDK, gateway, pipelines, compatibility endpoints); what one API key spent is read
from the daily totals per key the writer keeps (``rollup_daily_keys``, kind ``key``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select

from ...errors import InvalidInput
from .. import tables as t
from ..engine.dialect import insert_ignore
from .audit import Actor, record_audit

__all__ = [
    "DAY_US",
    "LIMIT_FIELDS",
    "MINUTE_US",
    "LimitField",
    "KeySpend",
    "Limits",
    "PruneUsage",
    "SetLimits",
    "TakeRequests",
    "Periods",
    "get_limits",
    "key_spend",
    "project_spend",
    "spent",
]

MINUTE_US, DAY_US = 60_000_000, 86_400_000_000


@dataclass(frozen=True, slots=True)
class LimitField:
    """One kind of limit: its column, whether it counts (requests, tokens: a whole number) or is an
    amount in USD, and whether one API key may have its own (else it is the project's only)."""

    column: str
    whole: bool
    per_key: bool


# by wire name
LIMIT_FIELDS = {
    "requestsPerMinute": LimitField("requests_per_minute", whole=True, per_key=True),
    "tokensPerMinute": LimitField("tokens_per_minute", whole=True, per_key=False),
    "costPerDay": LimitField("cost_per_day", whole=False, per_key=True),
    "costPerMonth": LimitField("cost_per_month", whole=False, per_key=True),
    "userRequestsPerMinute": LimitField("user_requests_per_minute", whole=True, per_key=False),
}


@dataclass(frozen=True, slots=True)
class Limits:
    project_id: int
    key_id: int  # 0: the project's
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    cost_per_day: float | None = None
    cost_per_month: float | None = None
    user_requests_per_minute: int | None = None

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"keyId": self.key_id or None}
        out.update({name: getattr(self, field.column) for name, field in LIMIT_FIELDS.items()})
        return out


def check_limits(values: dict[str, Any], key_id: int) -> dict[str, Any]:
    """The columns of ``values`` (wire names; ``None`` removes a limit), checked."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        field = LIMIT_FIELDS.get(name)
        if field is None:
            raise InvalidInput(f"{name}: unknown limit", field=name)
        if key_id and not field.per_key:
            raise InvalidInput(
                f"{name}: tokens and per-user limits are the project's (leave out keyId)", field=name
            )
        if value is not None:
            kinds = (int,) if field.whole else (int, float)
            if (
                isinstance(value, bool)
                or not isinstance(value, kinds)
                or not math.isfinite(value)
                or value <= 0
            ):
                kind = "a whole number" if field.whole else "an amount in USD"
                raise InvalidInput(f"{name}: {kind} above zero (null removes it)", field=name)
            if value > 10**12:
                raise InvalidInput(f"{name}: too large", field=name)
        out[field.column] = value
    return out


@dataclass(slots=True)
class SetLimits:
    """Set some limits of a project or key (others stay); answers them."""

    project_id: int
    key_id: int
    values: dict[str, Any]  # columns
    actor: Actor
    now_us: int
    size: int = 1

    def apply(self, conn: Connection) -> Limits:
        if self.key_id:
            k = t.api_keys
            owner = conn.scalar(select(k.c.project_id).where(k.c.id == self.key_id))
            if owner != self.project_id:
                raise InvalidInput(f"keyId: no API key {self.key_id} in this project", field="keyId")
        row = {
            "project_id": self.project_id,
            "key_id": self.key_id,
            "updated_us": self.now_us,
            "updated_by": self.actor.label,
        }
        insert_ignore(conn, t.limits, [row])
        if self.values:
            conn.execute(
                t.limits.update()
                .where(t.limits.c.project_id == self.project_id, t.limits.c.key_id == self.key_id)
                .values(**self.values, updated_us=self.now_us, updated_by=self.actor.label)
            )
        record_audit(
            conn,
            self.actor,
            "limits.set",
            f"key {self.key_id}" if self.key_id else "project",
            project_id=self.project_id,
            details={k: v for k, v in self.values.items()},
            now_us=self.now_us,
        )
        [found] = [x for x in get_limits(conn, self.project_id) if x.key_id == self.key_id]
        return found


def get_limits(conn: Connection, project_id: int) -> list[Limits]:
    """The project's limits and those of its keys."""
    rows = conn.execute(
        select(t.limits).where(t.limits.c.project_id == project_id).order_by(t.limits.c.key_id)
    )
    return [
        Limits(
            r.project_id,
            r.key_id,
            r.requests_per_minute,
            r.tokens_per_minute,
            r.cost_per_day,
            r.cost_per_month,
            r.user_requests_per_minute,
        )
        for r in rows
    ]


@dataclass(slots=True)
class TakeRequests:
    """Take up to ``want`` requests of counter ``name`` in the window starting ``window_us``, never past
    ``cap``; answers ``(granted, used)``, ``used`` counting what was granted."""

    name: str
    window_us: int
    want: int
    cap: int
    size: int = 1

    def apply(self, conn: Connection) -> tuple[int, int]:
        u = t.limit_usage
        at = (u.c.name == self.name, u.c.window_us == self.window_us)
        insert_ignore(conn, u, [{"name": self.name, "window_us": self.window_us, "used": 0.0}])
        # Read under a lock: the row's (PostgreSQL, FOR UPDATE) or the database's one write lock that
        # the writer's transaction holds (SQLite), so two processes never both take the last request.
        used = int(conn.scalar(select(u.c.used).where(*at).with_for_update()) or 0)
        granted = max(0, min(self.want, self.cap - used))
        if granted:
            conn.execute(u.update().where(*at).values(used=u.c.used + granted))
        return granted, used + granted


@dataclass(slots=True)
class PruneUsage:
    """Delete request counters of windows that ended before ``before_us``."""

    before_us: int
    size: int = 1

    def apply(self, conn: Connection) -> int:
        u = t.limit_usage
        return int(conn.execute(delete(u).where(u.c.window_us < self.before_us)).rowcount or 0)


def spent(conn: Connection, project_id: int, since_us: int, *, tokens: bool) -> float:
    """What the project's generations used since ``since_us``: tokens (from the rows) or cost (from
    the hourly rollups for whole hours, the rows for the hour under way)."""
    g, r = t.generations, t.rollup_hourly
    if tokens:
        return float(
            conn.scalar(
                select(func.coalesce(func.sum(g.c.total_tokens), 0)).where(
                    g.c.project_id == project_id, g.c.ts_us >= since_us
                )
            )
            or 0
        )
    hour = 3_600_000_000
    first_whole = since_us + (-since_us % hour)
    whole = conn.scalar(
        select(func.coalesce(func.sum(r.c.cost), 0.0)).where(
            r.c.project_id == project_id, r.c.hour_us >= first_whole
        )
    )
    part = conn.scalar(
        select(func.coalesce(func.sum(g.c.cost), 0.0)).where(
            g.c.project_id == project_id, g.c.ts_us >= since_us, g.c.ts_us < first_whole
        )
    )
    return float(whole or 0) + float(part or 0)


@dataclass(frozen=True, slots=True)
class Periods:
    """Where the minute, UTC day and month holding ``now_us`` began, and where the next month begins."""

    minute: int
    day: int
    month: int
    next_month: int

    @classmethod
    def at(cls, now_us: int) -> Periods:
        moment = datetime.fromtimestamp(now_us / 1_000_000, UTC)
        month = datetime(moment.year, moment.month, 1, tzinfo=UTC)
        following = datetime(moment.year + moment.month // 12, moment.month % 12 + 1, 1, tzinfo=UTC)
        return cls(
            now_us - now_us % MINUTE_US,
            now_us - now_us % DAY_US,
            int(month.timestamp() * 1_000_000),
            int(following.timestamp() * 1_000_000),
        )


def project_spend(conn: Connection, project_id: int, now_us: int) -> dict[str, float]:
    """What the project has used this minute (tokens), today and this month (cost), by wire name."""
    at = Periods.at(now_us)
    return {
        "tokensThisMinute": spent(conn, project_id, at.minute, tokens=True),
        "costToday": spent(conn, project_id, at.day, tokens=False),
        "costThisMonth": spent(conn, project_id, at.month, tokens=False),
    }


@dataclass(frozen=True, slots=True)
class KeySpend:
    """What one API key's generations used over some days."""

    requests: int = 0
    cost: float = 0.0
    tokens: int = 0

    def wire(self) -> dict[str, Any]:
        return {"requests": self.requests, "cost": self.cost, "tokens": self.tokens}


def key_spend(conn: Connection, project_id: int | None, since_us: int) -> dict[int, KeySpend]:
    """What each API key of the project (``None``: of every project) spent from the UTC day holding
    ``since_us`` on; keys that spent nothing are left out. Counted as generations are written (by any
    road that authenticates with the key), from the day per-key totals began (migration 0013)."""
    r = t.rollup_daily_keys
    q = (
        select(r.c.key, func.sum(r.c.requests), func.sum(r.c.cost), func.sum(r.c.tokens))
        .where(r.c.kind == "key", r.c.day_us >= since_us - since_us % DAY_US)
        .group_by(r.c.key)
    )
    if project_id is not None:
        q = q.where(r.c.project_id == project_id)
    rows = conn.execute(q)
    return {int(key): KeySpend(int(n or 0), float(c or 0.0), int(tok or 0)) for key, n, c, tok in rows}
