"""What a filter of generations adds up to: how many match, their cost and tokens, and the latency p50
and p95, shown above every list ("33 of 214 · $1.20 · 45,000 tokens · p50 420 ms").

A filter of nothing but an environment, a model and a time range is answered from the hourly rollups
for the whole hours it covers and from the rows at its ragged edges, so its cost grows with hours, not
rows (the rollups keep the totals of hours whose rows retention deleted since: such a range counts
them). Any other filter goes through the one query compiler over the rows, in one scan that groups by
latency bin. Latencies leave cache hits out (an answer from the cache says nothing of the model's
speed) and are read off the same histogram bins as analytics: within half a bin of the truth.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Connection, case, cast, func, select

from ... import tables as t
from ...mongo.fields import time_value
from ...mongo.filter import compile_filter
from ..rollups import HOUR_US, latency_bin_sql
from ..search import plan_searches
from .analytics import quantile

__all__ = ["Totals", "count_generations", "filter_totals"]

g = t.generations
_ROLLUP_PATHS = frozenset({"environment", "model.id", "timestamp"})


@dataclass(frozen=True, slots=True)
class Totals:
    """What the matching generations add up to (``p50``/``p95`` in ms; ``None``: no latency to read)."""

    matched: int
    cost: float
    tokens: int
    p50: float | None
    p95: float | None

    def wire(self) -> dict[str, Any]:
        return {
            "matched": self.matched,
            "cost": self.cost,
            "tokens": self.tokens,
            "latency": {"p50": self.p50, "p95": self.p95},
        }


class _Sums:
    def __init__(self) -> None:
        self.matched, self.cost, self.tokens = 0, 0.0, 0
        self.bins: dict[int, int] = {}

    def add_bin(self, index: int, n: int) -> None:
        if n:
            self.bins[index] = self.bins.get(index, 0) + n

    def totals(self) -> Totals:
        bins = sorted(self.bins.items())
        timed = sum(n for _, n in bins)
        if not timed:
            return Totals(self.matched, self.cost, self.tokens, None, None)
        p50, p95 = quantile(bins, timed, 0.5), quantile(bins, timed, 0.95)
        return Totals(self.matched, self.cost, self.tokens, p50, p95)


def filter_totals(conn: Connection, project_id: int, filter: Mapping[str, Any]) -> Totals:
    """The totals of the project's generations that match the MongoDB-style ``filter``."""
    sums = _Sums()
    scope = _rollup_scope(filter)
    if scope is None:
        _add_rows(
            conn,
            sums,
            [g.c.project_id == project_id, compile_filter(plan_searches(conn, filter, paged=False))],
        )
        return sums.totals()
    environment, model, start, end = scope
    whole_start, whole_end = -(-start // HOUR_US) * HOUR_US, end - end % HOUR_US
    if whole_start >= whole_end:
        edges = [(start, end)]
    else:
        edges = [(a, b) for a, b in ((start, whole_start), (whole_end, end)) if a < b]
        _add_rollups(conn, sums, project_id, environment, model, whole_start, whole_end)
    for low, high in edges:
        cond = [g.c.project_id == project_id, g.c.ts_us >= low, g.c.ts_us < high]
        if environment is not None:
            cond.append(g.c.environment == environment)
        if model is not None:
            cond.append(g.c.model_id == model)
        _add_rows(conn, sums, cond)
    return sums.totals()


def count_generations(conn: Connection, project_id: int, environment: str | None = None) -> int:
    """How many generations the project holds (in ``environment``): the "of 214"."""
    q = select(func.count()).select_from(g).where(g.c.project_id == project_id)
    if environment is not None:
        q = q.where(g.c.environment == environment)
    return int(conn.scalar(q) or 0)


def _add_rows(conn: Connection, sums: _Sums, where: list[ColumnElement[bool]]) -> None:
    histogram_bin = latency_bin_sql(cast(g.c.latency_ms, BigInteger)).label("bin")
    q = (
        select(
            histogram_bin,
            func.count(),
            func.coalesce(func.sum(g.c.cost), 0.0),
            func.coalesce(func.sum(g.c.prompt_tokens + g.c.completion_tokens), 0),
            func.sum(case((g.c.cache_hit.is_(False), 1), else_=0)),
        )
        .where(*where)
        .group_by(histogram_bin)
    )
    for index, n, cost, tokens, timed in conn.execute(q):
        sums.matched += int(n)
        sums.cost += float(cost or 0.0)
        sums.tokens += int(tokens or 0)
        sums.add_bin(int(index), int(timed or 0))


def _add_rollups(
    conn: Connection,
    sums: _Sums,
    project_id: int,
    environment: str | None,
    model: str | None,
    start: int,
    end: int,
) -> None:
    for table in (t.rollup_hourly, t.rollup_latency):
        cond = [table.c.project_id == project_id, table.c.hour_us >= start, table.c.hour_us < end]
        if environment is not None:
            cond.append(table.c.environment == environment)
        if table is t.rollup_hourly:
            if model is not None:
                cond.append(table.c.model_id == model)
            row = conn.execute(
                select(
                    func.coalesce(func.sum(table.c.requests), 0),
                    func.coalesce(func.sum(table.c.cost), 0.0),
                    func.coalesce(func.sum(table.c.prompt_tokens + table.c.completion_tokens), 0),
                ).where(*cond)
            ).one()
            sums.matched += int(row[0])
            sums.cost += float(row[1])
            sums.tokens += int(row[2])
        elif model is None:  # the latency histograms are not kept per model: the rows serve it
            q = select(table.c.bin, func.sum(table.c.count)).where(*cond, table.c.measure == "latency")
            for index, n in conn.execute(q.group_by(table.c.bin)):
                sums.add_bin(int(index), int(n))
        else:
            rows = [g.c.project_id == project_id, g.c.ts_us >= start, g.c.ts_us < end, g.c.model_id == model]
            if environment is not None:
                rows.append(g.c.environment == environment)
            _add_latency_rows(conn, sums, rows)


def _add_latency_rows(conn: Connection, sums: _Sums, where: list[ColumnElement[bool]]) -> None:
    histogram_bin = latency_bin_sql(cast(g.c.latency_ms, BigInteger)).label("bin")
    q = select(histogram_bin, func.count()).where(*where, g.c.cache_hit.is_(False)).group_by(histogram_bin)
    for index, n in conn.execute(q):
        sums.add_bin(int(index), int(n))


def _rollup_scope(filter: Mapping[str, Any]) -> tuple[str | None, str | None, int, int] | None:
    """``(environment, model, start, end)`` when the rollups can answer ``filter`` (a plain environment,
    a plain model, a time range from ``$gte`` to ``$lte``/``$lt``); ``None`` when only the rows can."""
    if not set(filter) <= _ROLLUP_PATHS:
        return None
    environment, model = filter.get("environment"), filter.get("model.id")
    if not isinstance(environment, str | None) or not isinstance(model, str | None):
        return None
    when = filter.get("timestamp", {})
    if not isinstance(when, Mapping) or not set(when) <= {"$gte", "$lte", "$lt"}:
        return None
    if "$lte" in when and "$lt" in when:
        return None
    start = time_value("timestamp", when["$gte"]) if "$gte" in when else 0
    if "$lte" in when:
        end = time_value("timestamp", when["$lte"]) + 1
    elif "$lt" in when:
        end = time_value("timestamp", when["$lt"])
    else:
        end = 1 << 62
    return environment, model, start, max(start, end)
