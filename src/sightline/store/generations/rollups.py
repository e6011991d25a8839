"""Rollups: totals per hour (and per day for users and templates) that the writer keeps as it inserts.

Analytics over a month of a million generations would otherwise read and group every row. Each
write transaction that inserts generations adds their counts to these tables in the same commit
(a handful of upserts per batch, whatever its size), so what analytics reads grows with hours and
models, not with rows:

* ``rollup_hourly``: requests, tokens, cost, errors, cache hits, cost saved, unpriced calls per
  hour, environment and model;
* ``rollup_latency``: latency and time-to-first-token histograms per hour (bins of
  :func:`latency_bin`), from which percentiles are read;
* ``rollup_daily_keys``: requests, cost and tokens per day and user, per day and template, and per
  day and API key (kind ``key``, the key's id: what a key has spent, and its budgets).

A run's userId reaches its generations after they were written (the run owns it): then
:func:`move_users` moves their totals from the old user to the new one.

Time ranges that do not cover whole hours (or days) are completed from the rows themselves by
the analytics queries: only the ragged edges are scanned.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Connection, case, literal

from .. import tables as t
from ..engine.dialect import upsert_add
from ..tables.generations import GenerationColumn as G

__all__ = [
    "DAY_US",
    "HOUR_US",
    "add_generations",
    "bin_middle",
    "latency_bin",
    "latency_bin_sql",
    "move_users",
]

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US

# Histogram bins of a whole number of milliseconds: [start, width) of each band. Bins are 10 ms
# wide under 1 s, 100 ms under 10 s, 1 s under 100 s, 10 s above: a percentile read off them is
# within half a bin of the truth.
_BANDS = ((0, 10), (1_000, 100), (10_000, 1_000), (100_000, 10_000))


# Where each band ends, and the first bin of each band: a bin is then one bisect and one division.
_ENDS = [start for start, _ in _BANDS[1:]]
_FIRST = [0]
for _i in range(1, len(_BANDS)):
    _FIRST.append(_FIRST[-1] + (_BANDS[_i][0] - _BANDS[_i - 1][0]) // _BANDS[_i - 1][1])


def latency_bin(ms: float) -> int:
    """The histogram bin of a duration in milliseconds (truncated to a whole millisecond)."""
    whole = int(ms) if ms > 0 else 0
    band = bisect_right(_ENDS, whole)
    start, width = _BANDS[band]
    return _FIRST[band] + (whole - start) // width


def latency_bin_sql(ms: ColumnElement[int]) -> ColumnElement[int]:
    """:func:`latency_bin` in SQL (integer arithmetic only), for rows read directly."""
    whens: list[tuple[ColumnElement[bool], ColumnElement[int]]] = []
    offset = 0
    for i, (start, width) in enumerate(_BANDS):
        end = _BANDS[i + 1][0] if i + 1 < len(_BANDS) else None
        expr = literal(offset, BigInteger) + (ms - start) // width
        if end is None:
            return case(*whens, else_=expr)
        whens.append((ms < end, expr))
        offset += (end - start) // width
    raise AssertionError("unreachable")


def bin_middle(index: int) -> float:
    """The middle of histogram bin ``index``, in milliseconds."""
    offset = 0
    for i, (start, width) in enumerate(_BANDS):
        end = _BANDS[i + 1][0] if i + 1 < len(_BANDS) else None
        bins = (end - start) // width if end is not None else None
        if bins is None or index < offset + bins:
            return start + (index - offset) * width + width / 2
        offset += bins
    raise AssertionError("unreachable")


_HOURLY = (
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "errors",
    "cache_hits",
    "cost_saved",
    "unpriced",
)


# Positions in a generations row held as a list, named by the table's GenerationColumn and bound
# once here: looking a member up on the enum costs ~0.3 µs, ten times the indexing itself.
_PROJECT, _ENVIRONMENT, _TS, _MODEL, _COST, _CACHE_HIT = (
    int(c) for c in (G.project_id, G.environment, G.ts_us, G.model_id, G.cost, G.cache_hit)
)
_PROMPT_TOKENS, _COMPLETION_TOKENS, _TOTAL_TOKENS = (
    int(c) for c in (G.prompt_tokens, G.completion_tokens, G.total_tokens)
)
_STATUS, _COST_SAVED, _LATENCY, _TTFT, _USER, _TEMPLATE = (
    int(c) for c in (G.status, G.cost_saved, G.latency_ms, G.ttft_ms, G.user_id, G.template_name)
)


def add_generations(conn: Connection, rows: Sequence[Sequence[Any]], key_id: int = 0) -> None:
    """Add newly inserted ``generations`` rows of one project and environment, held as lists (in
    ``tables.GENERATION_COLUMNS`` order), written with API key ``key_id`` (0: none), to the rollups
    (in the caller's transaction).

    The writer calls this for every batch it inserts: the totals are summed in plain dicts keyed by
    short tuples, and written as tuples in the tables' column order.
    """
    if not rows:
        return
    project, environment = rows[0][_PROJECT], rows[0][_ENVIRONMENT]
    hourly: dict[tuple[int, str], list[Any]] = {}
    latency: dict[tuple[int, str, int], int] = {}
    keys: dict[tuple[int, str, str], list[Any]] = {}
    api_key = str(key_id) if key_id else None
    for r in rows:
        ts, cost, hit, tokens = r[_TS], r[_COST], r[_CACHE_HIT], r[_TOTAL_TOKENS]
        hour = ts - ts % HOUR_US
        h = hourly.get((hour, r[_MODEL]))
        if h is None:
            h = hourly[(hour, r[_MODEL])] = [0, 0, 0, 0.0, 0, 0, 0.0, 0]
        h[0] += 1
        h[1] += r[_PROMPT_TOKENS]
        h[2] += r[_COMPLETION_TOKENS]
        if cost is None:
            h[7] += 1
        else:
            h[3] += cost
        if r[_STATUS] == "error":
            h[4] += 1
        h[6] += r[_COST_SAVED] or 0.0
        if hit:
            h[5] += 1
        else:  # an answer from the cache says nothing of the model's speed
            at = (hour, "latency", latency_bin(r[_LATENCY]))
            latency[at] = latency.get(at, 0) + 1
            if r[_TTFT] is not None:
                at = (hour, "ttft", latency_bin(r[_TTFT]))
                latency[at] = latency.get(at, 0) + 1
        day = ts - ts % DAY_US
        for kind, key in (("user", r[_USER]), ("template", r[_TEMPLATE]), ("key", api_key)):
            if key is not None:
                k = keys.get((day, kind, key))
                if k is None:
                    keys[(day, kind, key)] = [1, cost or 0.0, tokens]
                else:
                    k[0] += 1
                    k[1] += cost or 0.0
                    k[2] += tokens
    hours = [(project, environment, *key, *totals) for key, totals in hourly.items()]
    upsert_add(conn, t.rollup_hourly, hours, _HOURLY, _HOURLY_COLUMNS)
    bins = [(project, environment, *key, n) for key, n in latency.items()]
    upsert_add(conn, t.rollup_latency, bins, ("count",), _LATENCY_COLUMNS)
    _add_keys(conn, project, environment, keys)


def move_users(conn: Connection, rows: Sequence[Mapping[Any, Any]], new_user: str | None) -> None:
    """Move the per-user totals of ``rows`` (generations of one project, as they were) to ``new_user``."""
    by_environment: dict[str, dict[tuple[int, str, str], list[Any]]] = {}
    for r in rows:
        if r["user_id"] == new_user:
            continue
        keys = by_environment.setdefault(r["environment"], {})
        day = r["ts_us"] - r["ts_us"] % DAY_US
        for user, sign in ((r["user_id"], -1), (new_user, 1)):
            if user is not None:
                k = keys.setdefault((day, "user", user), [0, 0.0, 0])
                k[0] += sign
                k[1] += sign * (r["cost"] or 0.0)
                k[2] += sign * r["total_tokens"]
    for environment, keys in by_environment.items():
        _add_keys(conn, rows[0]["project_id"], environment, keys)


# The order of the rollup rows written as tuples.
_HOURLY_COLUMNS = ("project_id", "environment", "hour_us", "model_id", *_HOURLY)
_LATENCY_COLUMNS = ("project_id", "environment", "hour_us", "measure", "bin", "count")
_KEY_TOTALS = ("requests", "cost", "tokens")
_KEY_COLUMNS = ("project_id", "environment", "day_us", "kind", "key", *_KEY_TOTALS)


def _add_keys(
    conn: Connection, project: int, environment: str, keys: Mapping[tuple[int, str, str], list[Any]]
) -> None:
    values = [(project, environment, *key, *totals) for key, totals in keys.items()]
    upsert_add(conn, t.rollup_daily_keys, values, _KEY_TOTALS, _KEY_COLUMNS)
