"""Analytics and prompt queries for the dashboard, grouped in the database.

Every series is grouped by time bucket, computed as an integer division of the integer ``ts_us``
column (``(ts_us - start) // bucket``): the same SQL and the same answer on SQLite and PostgreSQL.
Each query reads one time range of one project once, from the ``(project_id, ts_us)`` index.

Percentiles (latency, time to first token) come from a histogram built in SQL: milliseconds fall
into a few hundred bins (10 ms wide under 1 s, 100 ms under 10 s, 1 s under 100 s, 10 s above),
grouped per time bucket, and the percentile is read off the cumulative counts here. That is a
GROUP BY on both databases (no window function over millions of rows) and its error stays under
half a bin. (PostgreSQL rounds a float to its nearest whole millisecond, SQLite truncates it:
a value may land one bin apart at an edge, never further.)

What it costs: the whole hours (and, for top users and templates, whole days) of a range are read
from the rollups the writer keeps as it inserts (``store.rollups``), so their cost grows with hours
and models, not with rows; only the ragged edges of a range, less than an hour or a day at each end,
are read from the ``generations`` rows themselves. Ranges cut into buckets shorter than an hour
(under half a day) are read from the rows alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import BigInteger, ColumnElement, Connection, and_, case, cast, func, literal, or_, select

from ... import tables as t
from ..rollups import DAY_US, HOUR_US, bin_middle, latency_bin_sql
from ..search import containing

__all__ = [
    "quantile",
    "MINUTE_US",
    "CostRank",
    "FeedbackBucket",
    "KeyBucket",
    "LatencySummary",
    "ModelBucket",
    "Percentiles",
    "PromptUse",
    "PromptVersion",
    "Window",
    "data_span",
    "distinct_models",
    "feedback_by_bucket",
    "keys_by_bucket",
    "latency_percentiles",
    "list_feedback",
    "prompt_names",
    "prompt_usage",
    "prompt_versions",
    "recent_chats",
    "top_by_cost",
    "usage_by_model",
    "window",
]

g = t.generations
MINUTE_US = 60_000_000
_HOUR = 60 * MINUTE_US
_DAY = 24 * _HOUR
# (longest range, bucket width): about 24-90 points on a chart whatever the range.
_BUCKETS = (
    (2 * _HOUR, 5 * MINUTE_US),
    (12 * _HOUR, 15 * MINUTE_US),
    (3 * _DAY, _HOUR),
    (10 * _DAY, 3 * _HOUR),
    (45 * _DAY, _DAY),
    (400 * _DAY, 7 * _DAY),
)


@dataclass(frozen=True, slots=True)
class Window:
    """A time range cut into equal buckets; ``start_us`` is aligned to the bucket width (UTC)."""

    start_us: int
    end_us: int
    bucket_us: int

    @property
    def count(self) -> int:
        return max(1, -(-(self.end_us - self.start_us) // self.bucket_us))

    def bucket_start(self, index: int) -> int:
        return self.start_us + index * self.bucket_us


def window(from_us: int, to_us: int) -> Window:
    """The buckets for ``[from_us, to_us)``: the width grows with the range."""
    span = max(to_us - from_us, MINUTE_US)
    bucket = next((width for longest, width in _BUCKETS if span <= longest), 30 * _DAY)
    return Window(from_us - from_us % bucket, to_us, bucket)


Span = tuple[int, int]


def _split(start: int, end: int, unit: int) -> tuple[Span | None, list[Span]]:
    """``[start, end)`` as the whole ``unit``s inside it (for rollups) and the edges (for rows)."""
    low, high = -(-start // unit) * unit, end - end % unit
    if low >= high:
        return None, [(start, end)]
    return (low, high), [span for span in ((start, low), (high, end)) if span[0] < span[1]]


def _where(project_id: int, spans: Sequence[Span], environment: str | None) -> list[ColumnElement[bool]]:
    cond: list[ColumnElement[bool]] = [
        g.c.project_id == project_id,
        or_(*(and_(g.c.ts_us >= low, g.c.ts_us < high) for low, high in spans)),
    ]
    if environment:
        cond.append(g.c.environment == environment)
    return cond


def _rollup_where(table: Any, column: Any, project_id: int, span: Span, environment: str | None) -> list[Any]:
    cond = [table.c.project_id == project_id, column >= span[0], column < span[1]]
    if environment:
        cond.append(table.c.environment == environment)
    return cond


def _hourly_split(w: Window) -> tuple[Span | None, list[Span]]:
    """Rollups serve whole hours when every hour falls inside one bucket; else rows serve it all."""
    if w.bucket_us % HOUR_US:
        return None, [(w.start_us, w.end_us)]
    return _split(w.start_us, w.end_us, HOUR_US)


def _bucket(w: Window, column: ColumnElement[int] = g.c.ts_us) -> ColumnElement[int]:
    """The bucket index of a time column (a row's ``ts_us``, a rollup's hour)."""
    return ((column - literal(w.start_us, BigInteger)) // literal(w.bucket_us, BigInteger)).label("bucket")


@dataclass(frozen=True, slots=True)
class ModelBucket:
    """Totals of one model in one time bucket."""

    bucket: int
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost: float
    errors: int
    cache_hits: int
    cost_saved: float
    unpriced: int


def usage_by_model(
    conn: Connection, project_id: int, w: Window, environment: str | None = None
) -> list[ModelBucket]:
    """Requests, tokens, cost, errors, cache hits and the cost the cache saved, per bucket and model."""
    covered, edges = _hourly_split(w)
    totals: dict[tuple[int, str], list[float]] = {}
    parts = [_usage_rows(conn, project_id, w, edges, environment)] if edges else []
    if covered is not None:
        r = t.rollup_hourly
        bucket = ((r.c.hour_us - literal(w.start_us, BigInteger)) // literal(w.bucket_us, BigInteger)).label(
            "b"
        )
        sums = [
            func.sum(r.c[name])
            for name in (
                "requests",
                "prompt_tokens",
                "completion_tokens",
                "cost",
                "errors",
                "cache_hits",
                "cost_saved",
                "unpriced",
            )
        ]
        q = (
            select(bucket, r.c.model_id, *sums)
            .where(*_rollup_where(r, r.c.hour_us, project_id, covered, environment))
            .group_by(bucket, r.c.model_id)
        )
        parts.append(conn.execute(q))
    for part in parts:
        for b, model, *values in part:
            into = totals.setdefault((int(b), model), [0] * 8)
            for i, value in enumerate(values):
                into[i] += value or 0
    return [
        ModelBucket(b, m, int(n), int(pt), int(ct), float(c), int(e), int(h), float(sv), int(u))
        for (b, m), (n, pt, ct, c, e, h, sv, u) in sorted(totals.items())
    ]


def _usage_rows(
    conn: Connection, project_id: int, w: Window, spans: list[Span], environment: str | None
) -> Any:
    bucket = _bucket(w)
    q = (
        select(
            bucket,
            g.c.model_id,
            func.count(),
            func.coalesce(func.sum(g.c.prompt_tokens), 0),
            func.coalesce(func.sum(g.c.completion_tokens), 0),
            func.coalesce(func.sum(g.c.cost), 0.0),
            func.sum(case((g.c.status == "error", 1), else_=0)),
            func.sum(case((g.c.cache_hit.is_(True), 1), else_=0)),
            func.coalesce(func.sum(g.c.cost_saved), 0.0),
            func.sum(case((g.c.cost.is_(None), 1), else_=0)),
        )
        .where(*_where(project_id, spans, environment))
        .group_by(bucket, g.c.model_id)
    )
    return conn.execute(q)


@dataclass(frozen=True, slots=True)
class Percentiles:
    """Percentiles of one time bucket, in milliseconds (``None`` where the bucket has no value)."""

    bucket: int
    count: int
    p50: float | None
    p95: float | None


def quantile(bins: Sequence[tuple[int, int]], total: int, q: float) -> float:
    """The ``q`` quantile from ``(bin, count)`` pairs sorted by bin."""
    rank, seen = q * total, 0
    for index, n in bins:
        seen += n
        if seen >= rank:
            return bin_middle(index)
    return bin_middle(bins[-1][0])


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Percentiles per time bucket, and over the whole window."""

    buckets: list[Percentiles]
    overall: Percentiles


def _percentiles(bucket: int, bins: list[tuple[int, int]]) -> Percentiles:
    bins.sort()
    total = sum(n for _, n in bins)
    if not total:
        return Percentiles(bucket, 0, None, None)
    return Percentiles(bucket, total, quantile(bins, total, 0.5), quantile(bins, total, 0.95))


def latency_percentiles(
    conn: Connection,
    project_id: int,
    w: Window,
    environment: str | None = None,
    measure: Literal["latency", "ttft"] = "latency",
) -> LatencySummary:
    """p50 and p95 of latency (or of time to first token) per bucket; cache hits are left out."""
    covered, edges = _hourly_split(w)
    parts = []
    if edges:
        column = g.c.latency_ms if measure == "latency" else g.c.ttft_ms
        bucket = _bucket(w)
        histogram_bin = latency_bin_sql(cast(column, BigInteger)).label("bin")
        q = (
            select(bucket, histogram_bin, func.count())
            .where(*_where(project_id, edges, environment), column.is_not(None), g.c.cache_hit.is_(False))
            .group_by(bucket, histogram_bin)
        )
        parts.append(conn.execute(q))
    if covered is not None:
        r = t.rollup_latency
        rb = _bucket(w, r.c.hour_us)
        q = (
            select(rb, r.c.bin, func.sum(r.c.count))
            .where(*_rollup_where(r, r.c.hour_us, project_id, covered, environment), r.c.measure == measure)
            .group_by(rb, r.c.bin)
        )
        parts.append(conn.execute(q))
    counts: dict[tuple[int, int], int] = defaultdict(int)
    for part in parts:
        for b, index, n in part:
            counts[(int(b), int(index))] += int(n)
    per_bucket: dict[int, list[tuple[int, int]]] = defaultdict(list)
    overall: dict[int, int] = defaultdict(int)
    for (b, index), n in counts.items():
        per_bucket[b].append((index, n))
        overall[index] += n
    return LatencySummary(
        [_percentiles(b, per_bucket[b]) for b in sorted(per_bucket)],
        _percentiles(-1, list(overall.items())),
    )


@dataclass(frozen=True, slots=True)
class CostRank:
    key: str
    requests: int
    cost: float
    tokens: int


def top_by_cost(
    conn: Connection,
    project_id: int,
    w: Window,
    environment: str | None = None,
    by: Literal["user", "template"] = "user",
    limit: int = 10,
) -> list[CostRank]:
    """The users (or templates) that cost the most in the window, most first."""
    covered, edges = _split(w.start_us, w.end_us, DAY_US)
    parts = []
    if edges:
        column = g.c.user_id if by == "user" else g.c.template_name
        q = (
            select(
                column,
                func.count(),
                func.coalesce(func.sum(g.c.cost), 0.0),
                func.coalesce(func.sum(g.c.total_tokens), 0),
            )
            .where(*_where(project_id, edges, environment), column.is_not(None))
            .group_by(column)
        )
        parts.append(conn.execute(q))
    if covered is not None:
        r = t.rollup_daily_keys
        q = (
            select(r.c.key, func.sum(r.c.requests), func.sum(r.c.cost), func.sum(r.c.tokens))
            .where(*_rollup_where(r, r.c.day_us, project_id, covered, environment), r.c.kind == by)
            .group_by(r.c.key)
        )
        parts.append(conn.execute(q))
    totals: dict[str, list[float]] = {}
    for part in parts:
        for key, n, c, tok in part:
            into = totals.setdefault(key, [0, 0.0, 0])
            into[0] += n or 0
            into[1] += c or 0.0
            into[2] += tok or 0
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1][1], kv[0]))[:limit]
    return [CostRank(k, int(n), float(c), int(tok)) for k, (n, c, tok) in ranked if n > 0]


def data_span(conn: Connection, project_id: int, environment: str | None = None) -> Span | None:
    """The times of the oldest and the newest generation (``None``: none yet). Two index seeks on
    ``(project_id, ts_us)``: the same cost on a million rows as on ten."""
    cond: list[ColumnElement[bool]] = [g.c.project_id == project_id]
    if environment:
        cond.append(g.c.environment == environment)
    newest = conn.scalar(select(g.c.ts_us).where(*cond).order_by(g.c.ts_us.desc()).limit(1))
    if newest is None:
        return None
    oldest = conn.scalar(select(g.c.ts_us).where(*cond).order_by(g.c.ts_us).limit(1))
    return int(oldest if oldest is not None else newest), int(newest)


@dataclass(frozen=True, slots=True)
class FeedbackBucket:
    """The feedback on the generations of one time bucket (by the generation's time)."""

    bucket: int
    up: int
    down: int
    rated: int
    rating_sum: int

    @property
    def rating(self) -> float | None:
        return self.rating_sum / self.rated if self.rated else None


def feedback_by_bucket(
    conn: Connection, project_id: int, w: Window, environment: str | None = None
) -> list[FeedbackBucket]:
    """Thumbs up and down, and ratings (1-5), per time bucket of the generations they were given on.

    Read from the rows (no rollup holds feedback, which arrives after its generation), through the
    partial index of the generations that got feedback (migration 0016): the walk is as long as the
    feedback, not the range.
    """
    bucket = _bucket(w)
    q = (
        select(
            bucket,
            func.sum(case((g.c.feedback_thumbs == "up", 1), else_=0)),
            func.sum(case((g.c.feedback_thumbs == "down", 1), else_=0)),
            func.count(g.c.feedback_rating),
            func.coalesce(func.sum(g.c.feedback_rating), 0),
        )
        .where(
            *_where(project_id, [(w.start_us, w.end_us)], environment),
            or_(g.c.feedback_thumbs.is_not(None), g.c.feedback_rating.is_not(None)),
        )
        .group_by(bucket)
    )
    return [
        FeedbackBucket(int(b), int(up or 0), int(down or 0), int(rated or 0), int(total or 0))
        for b, up, down, rated, total in conn.execute(q)
        if 0 <= int(b) < w.count
    ]


@dataclass(frozen=True, slots=True)
class KeyBucket:
    """Requests and cost of one user (or template) in one time bucket."""

    bucket: int
    key: str
    requests: int
    cost: float


def keys_by_bucket(
    conn: Connection,
    project_id: int,
    w: Window,
    keys: Sequence[str],
    environment: str | None = None,
    by: Literal["user", "template"] = "user",
) -> list[KeyBucket]:
    """Requests and cost per time bucket of each of ``keys`` (user ids or template names).

    Buckets of whole days read the daily rollups for the whole days of the range; the rest (and
    buckets shorter than a day) read the rows of those keys only, through the
    ``(project_id, user_id|template_name, ts_us)`` index.
    """
    if not keys:
        return []
    covered, edges = (
        _split(w.start_us, w.end_us, DAY_US)
        if w.bucket_us % DAY_US == 0
        else (None, [(w.start_us, w.end_us)])
    )
    parts = []
    if edges:
        column = g.c.user_id if by == "user" else g.c.template_name
        bucket = _bucket(w)
        q = (
            select(bucket, column, func.count(), func.coalesce(func.sum(g.c.cost), 0.0))
            .where(*_where(project_id, edges, environment), column.in_(list(keys)))
            .group_by(bucket, column)
        )
        parts.append(conn.execute(q))
    if covered is not None:
        r = t.rollup_daily_keys
        rb = _bucket(w, r.c.day_us)
        q = (
            select(rb, r.c.key, func.sum(r.c.requests), func.sum(r.c.cost))
            .where(*_rollup_where(r, r.c.day_us, project_id, covered, environment), r.c.kind == by)
            .where(r.c.key.in_(list(keys)))
            .group_by(rb, r.c.key)
        )
        parts.append(conn.execute(q))
    totals: dict[tuple[int, str], list[float]] = {}
    for part in parts:
        for b, key, n, c in part:
            into = totals.setdefault((int(b), key), [0, 0.0])
            into[0] += n or 0
            into[1] += c or 0.0
    return [
        KeyBucket(b, key, int(n), float(c)) for (b, key), (n, c) in sorted(totals.items()) if 0 <= b < w.count
    ]


@dataclass(frozen=True, slots=True)
class PromptVersion:
    name: str
    version: str
    created_us: int
    chat: list[dict[str, Any]] | None
    text: str | None


def prompt_versions(conn: Connection, project_id: int, name: str | None = None) -> list[PromptVersion]:
    """Recorded template versions, oldest first (of one template when ``name`` is given)."""
    p = t.prompt_versions
    q = select(p).where(p.c.project_id == project_id)
    if name is not None:
        q = q.where(p.c.name == name)
    q = q.order_by(p.c.name, p.c.created_us, p.c.version)
    return [
        PromptVersion(r.name, r.version, r.created_us, (r.body or {}).get("chat"), (r.body or {}).get("text"))
        for r in conn.execute(q)
    ]


def prompt_names(conn: Connection, project_id: int) -> list[str]:
    p = t.prompt_versions
    q = select(p.c.name).where(p.c.project_id == project_id).group_by(p.c.name).order_by(p.c.name)
    return list(conn.scalars(q))


@dataclass(frozen=True, slots=True)
class PromptUse:
    """How one template version was used: calls, cost and the feedback its generations got."""

    name: str
    version: str | None
    requests: int
    cost: float
    rated: int
    rating_sum: int
    thumbs_up: int
    thumbs_down: int
    last_us: int

    @property
    def average_rating(self) -> float | None:
        return self.rating_sum / self.rated if self.rated else None


def prompt_usage(
    conn: Connection,
    project_id: int,
    from_us: int | None = None,
    to_us: int | None = None,
    environment: str | None = None,
    name: str | None = None,
) -> list[PromptUse]:
    """Use, cost and feedback per template name and version (of one template when ``name`` is given)."""
    cond: list[ColumnElement[bool]] = [g.c.project_id == project_id]
    cond.append(g.c.template_name == name if name is not None else g.c.template_name.is_not(None))
    if from_us is not None:
        cond.append(g.c.ts_us >= from_us)
    if to_us is not None:
        cond.append(g.c.ts_us < to_us)
    if environment:
        cond.append(g.c.environment == environment)
    q = (
        select(
            g.c.template_name,
            g.c.template_version,
            func.count(),
            func.coalesce(func.sum(g.c.cost), 0.0),
            func.count(g.c.feedback_rating),
            func.coalesce(func.sum(g.c.feedback_rating), 0),
            func.sum(case((g.c.feedback_thumbs == "up", 1), else_=0)),
            func.sum(case((g.c.feedback_thumbs == "down", 1), else_=0)),
            func.max(g.c.ts_us),
        )
        .where(*cond)
        .group_by(g.c.template_name, g.c.template_version)
    )
    return [
        PromptUse(n, v, int(c), float(cost), int(rated), int(rs), int(up), int(down), int(last))
        for n, v, c, cost, rated, rs, up, down, last in conn.execute(q)
    ]


def distinct_models(conn: Connection, project_id: int, limit: int = 200) -> list[str]:
    """The model ids a project has used, in order, by skipping through the model index.

    One index seek per distinct model (a recursive query), so it costs the same on a million rows
    as on a hundred, where ``SELECT DISTINCT`` would read every row.
    """
    col = g.c.model_id
    first = select(func.min(col)).where(g.c.project_id == project_id).scalar_subquery()
    seed = select(first.label("v"), literal(1).label("n")).cte("models", recursive=True)
    following = select(func.min(col)).where(g.c.project_id == project_id, col > seed.c.v).scalar_subquery()
    walk = seed.union_all(select(following, seed.c.n + 1).where(seed.c.v.is_not(None), seed.c.n < limit))
    return [v for v in conn.scalars(select(walk.c.v).where(walk.c.v.is_not(None))) if v is not None]


def list_feedback(conn: Connection, project_id: int, generation_id: str) -> list[dict[str, Any]]:
    """Every feedback given on a generation, in the order received, as sent (``generationId``, …)."""
    fb = t.feedback
    q = (
        select(fb.c.body)
        .where(fb.c.project_id == project_id, fb.c.generation_id == generation_id)
        .order_by(fb.c.id)
    )
    return [dict(body) for body in conn.scalars(q)]


@dataclass(frozen=True, slots=True)
class ChatSummary:
    chat_id: str
    generations: int
    last_us: int
    user_id: str | None


def recent_chats(
    conn: Connection,
    project_id: int,
    environment: str | None = None,
    scan: int = 2000,
    limit: int = 50,
    q: str | None = None,
) -> list[ChatSummary]:
    """The chats of the latest ``scan`` generations in chats, newest first (bounded work on any table
    size, through the partial index of chats' generations); with a search ``q``, of the chats holding a
    call that matches it."""
    latest = select(g.c.chat_id, g.c.ts_us, g.c.user_id).where(
        g.c.project_id == project_id, g.c.chat_id.is_not(None)
    )
    if environment:
        latest = latest.where(g.c.environment == environment)
    if q:
        latest = latest.where(g.c.chat_id.in_(containing("chat_id", project_id, q)))
    recent = latest.order_by(g.c.ts_us.desc()).limit(scan).subquery()
    chats = (
        select(recent.c.chat_id, func.count(), func.max(recent.c.ts_us), func.max(recent.c.user_id))
        .where(recent.c.chat_id.is_not(None))
        .group_by(recent.c.chat_id)
        .order_by(func.max(recent.c.ts_us).desc())
        .limit(limit)
    )
    return [ChatSummary(c, int(n), int(last), u) for c, n, last, u in conn.execute(chats)]
