"""Analytics: requests, tokens and cost by model, latency, errors, cache, scores, feedback, and
users and templates (ranked, and over time).

Each chart is drawn by the page's script from JSON in the page; the same numbers are in a table
under it, which is what a browser without JavaScript shows. The queries read one project's time
range each and run side by side on their own connections (they are independent reads).

Without a range in the address, the page picks one that fits the data (``timerange.fitting_range``):
the last 24 hours when anything happened in them, else the shortest range that holds it all.
Clicking a bar or a point opens the generations behind it: the chart data carries each series'
filter and each bucket's times, and the script joins them into a ``/generations`` address.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Request
from sqlalchemy import Connection
from starlette.responses import Response

from ....errors import InvalidInput
from ....store.evals.scores import ScoreTrend, score_trends
from ....store.generations.reads.analytics import (
    CostRank,
    FeedbackBucket,
    KeyBucket,
    LatencySummary,
    ModelBucket,
    Window,
    data_span,
    distinct_models,
    feedback_by_bucket,
    keys_by_bucket,
    latency_percentiles,
    top_by_cost,
    usage_by_model,
    window,
)
from ....store.generations.records import iso
from ..core.context import View, ViewDep
from ..core.render import page, url_with
from ..core.timerange import RANGES, TimeRange, fitting_range, input_value, now_us, parse_range

router = APIRouter()
T = TypeVar("T")
_DAY_US = 86_400 * 1_000_000
_MAX_MODELS = 8  # more models than this are summed as "other"
_TOP_KEYS = 5  # users and templates drawn over time, the costliest first
_PALETTE = 10  # colours of charts.js's palette: a model's colour is its place among the project's models


@dataclass
class Series:
    """One line or stack. ``color``: ``"p3"`` (the palette's fourth colour), ``"h"`` (from a hash of
    the label, so a user keeps one colour), ``"--ok"`` (a colour of the stylesheet), or ``None`` (by
    order). ``filter``: the generations filter of this series, for a click on it."""

    label: str
    values: list[float | None]
    color: str | None = None
    filter: dict[str, str] | None = None


@dataclass
class Chart:
    """One chart and its table: ``labels`` along the axis, one series per line or stack."""

    id: str
    title: str
    kind: str  # "bar" (stacked), "line" or "hbar"
    unit: str  # "count", "usd", "ms", "pct", "tokens", "score"
    labels: list[str]
    series: list[Series]
    links: list[str | None] = field(default_factory=list)
    note: str = ""
    empty_text: str = "No data in this range."

    clickable: bool = True  # a bar or point opens the generations behind it

    def data(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "unit": self.unit,
            "labels": self.labels,
            "series": [
                {"label": s.label, "values": s.values, "color": s.color, "filter": s.filter}
                for s in self.series
            ],
            "links": self.links if self.kind == "hbar" else [],  # time charts: from _links
            "clickable": self.clickable,
        }

    @property
    def empty(self) -> bool:
        """Nothing to draw: no value at all (a line), or only zeros (bars)."""
        if self.kind == "line":
            return all(v is None for s in self.series for v in s.values)
        return not any(v for s in self.series for v in s.values)


def _labels(w: Window) -> list[str]:
    fmt = "%Y-%m-%d" if w.bucket_us >= _DAY_US else "%m-%d %H:%M"
    return [datetime.fromtimestamp(w.bucket_start(i) / 1_000_000, UTC).strftime(fmt) for i in range(w.count)]


def _by_model(
    rows: Sequence[ModelBucket],
    w: Window,
    value: Callable[[ModelBucket], float],
    models: Sequence[str] = (),
) -> list[Series]:
    totals: dict[str, float] = defaultdict(float)
    for r in rows:
        totals[r.model] += r.requests
    ranked = sorted(totals, key=lambda m: (-totals[m], m))
    shown = ranked if len(ranked) <= _MAX_MODELS else ranked[: _MAX_MODELS - 1]
    series = {m: [0.0] * w.count for m in shown}
    for r in rows:
        name = r.model if r.model in series else "other"
        if name not in series:
            series[name] = [0.0] * w.count
        if 0 <= r.bucket < w.count:
            series[name][r.bucket] += value(r)
    place = {m: i for i, m in enumerate(models)}
    return [
        Series(
            name,
            list(values),
            color=f"p{place[name] % _PALETTE}" if name in place else ("--muted" if name == "other" else "h"),
            filter={"model.id": name} if name != "other" else None,
        )
        for name, values in series.items()
    ]


def _rates(rows: Sequence[ModelBucket], w: Window) -> tuple[list[float | None], ...]:
    requests, errors, hits, saved = [0] * w.count, [0] * w.count, [0] * w.count, [0.0] * w.count
    for r in rows:
        if 0 <= r.bucket < w.count:
            requests[r.bucket] += r.requests
            errors[r.bucket] += r.errors
            hits[r.bucket] += r.cache_hits
            saved[r.bucket] += r.cost_saved
    error_rate = [e / n if n else None for e, n in zip(errors, requests, strict=True)]
    hit_rate = [h / n if n else None for h, n in zip(hits, requests, strict=True)]
    return error_rate, hit_rate, list(saved)


def _percentile_series(summary: LatencySummary, w: Window, label: str) -> list[Series]:
    p50: list[float | None] = [None] * w.count
    p95: list[float | None] = [None] * w.count
    for p in summary.buckets:
        if 0 <= p.bucket < w.count:
            p50[p.bucket], p95[p.bucket] = p.p50, p.p95
    return [Series(f"{label} p50", p50), Series(f"{label} p95", p95)]


def _ranking(chart_id: str, title: str, ranks: list[CostRank], link: Callable[[str], str]) -> Chart:
    return Chart(
        chart_id,
        title,
        "hbar",
        "usd",
        [r.key for r in ranks],
        [Series("cost", [r.cost for r in ranks]), Series("requests", [float(r.requests) for r in ranks])],
        links=[link(r.key) for r in ranks],
    )


@dataclass
class Results:
    usage: list[ModelBucket]
    latency: LatencySummary
    ttft: LatencySummary
    users: list[CostRank]
    templates: list[CostRank]
    scores: list[ScoreTrend]
    feedback: list[FeedbackBucket]
    user_buckets: list[KeyBucket]
    template_buckets: list[KeyBucket]
    models: list[str]


def _run_queries(request: Request, view: View, w: Window) -> Results:
    """The page's queries, side by side: each is an independent read on its own connection."""
    db, pid, env = request.app.state.db, view.project_id, view.environment

    def read(query: Callable[[Connection], T]) -> Callable[[], T]:
        def run() -> T:
            with db.read() as conn:
                return query(conn)

        return run

    # Two at a time: each query reads the whole range once, so one page uses two cores at most and
    # leaves the others to the requests of other users (more threads only queue behind each other).
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="sightline-analytics") as pool:
        usage = pool.submit(read(lambda c: usage_by_model(c, pid, w, env)))
        latency = pool.submit(read(lambda c: latency_percentiles(c, pid, w, env, "latency")))
        ttft = pool.submit(read(lambda c: latency_percentiles(c, pid, w, env, "ttft")))
        users = pool.submit(read(lambda c: _ranked(c, pid, w, env, "user")))
        templates = pool.submit(read(lambda c: _ranked(c, pid, w, env, "template")))
        scores = pool.submit(read(lambda c: score_trends(c, pid, w, env)))
        feedback = pool.submit(read(lambda c: feedback_by_bucket(c, pid, w, env)))
        models = pool.submit(read(lambda c: distinct_models(c, pid)))
        (top_users, user_buckets), (top_templates, template_buckets) = users.result(), templates.result()
        return Results(
            usage.result(),
            latency.result(),
            ttft.result(),
            top_users,
            top_templates,
            scores.result(),
            feedback.result(),
            user_buckets,
            template_buckets,
            models.result(),
        )


def _ranked(
    conn: Connection, project_id: int, w: Window, environment: str | None, by: Literal["user", "template"]
) -> tuple[list[CostRank], list[KeyBucket]]:
    """The costliest users (or templates), and the first few of them bucket by bucket."""
    ranks = top_by_cost(conn, project_id, w, environment, by)
    keys = [r.key for r in ranks[:_TOP_KEYS]]
    return ranks, keys_by_bucket(conn, project_id, w, keys, environment, by)


def _key_series(rows: Sequence[KeyBucket], keys: Sequence[str], w: Window, param: str) -> list[Series]:
    values = {k: [0.0] * w.count for k in keys}
    for r in rows:
        if r.key in values:
            values[r.key][r.bucket] += r.requests
    return [Series(k, list(v), color="h", filter={param: k}) for k, v in values.items()]


def _feedback_series(rows: Sequence[FeedbackBucket], w: Window) -> tuple[list[Series], list[Series]]:
    up: list[float | None] = [0.0] * w.count
    down: list[float | None] = [0.0] * w.count
    rating: list[float | None] = [None] * w.count
    for r in rows:
        up[r.bucket], down[r.bucket], rating[r.bucket] = r.up, r.down, r.rating
    thumbs = [
        Series("thumbs up", up, color="--ok", filter={"feedback.thumbs": "up"}),
        Series("thumbs down", down, color="--error", filter={"feedback.thumbs": "down"}),
    ]
    return thumbs, [Series("average rating", rating, color="--star", filter={"feedback": "true"})]


def build_charts(results: Results, w: Window, scope: dict[str, str], tr: TimeRange) -> list[Chart]:
    """The charts of the analytics page, from the query results."""
    labels = _labels(w)
    error_rate, hit_rate, saved = _rates(results.usage, w)
    ranged = tr.params() if tr.key != "all" else {}  # the list has no "all": no time filter is all
    models = results.models
    thumbs, rating = _feedback_series(results.feedback, w)
    top_users = [r.key for r in results.users[:_TOP_KEYS]]
    top_templates = [r.key for r in results.templates[:_TOP_KEYS]]

    def filtered(name: str) -> Callable[[str], str]:
        return lambda key: url_with("/generations", {**scope, **ranged, name: key})

    return [
        Chart(
            "requests",
            "Requests by model",
            "bar",
            "count",
            labels,
            _by_model(results.usage, w, lambda r: r.requests, models),
        ),
        Chart(
            "tokens",
            "Tokens by model",
            "bar",
            "tokens",
            labels,
            _by_model(results.usage, w, lambda r: r.prompt_tokens + r.completion_tokens, models),
        ),
        Chart(
            "cost",
            "Cost by model",
            "bar",
            "usd",
            labels,
            _by_model(results.usage, w, lambda r: r.cost, models),
        ),
        Chart(
            "latency",
            "Latency and time to first token",
            "line",
            "ms",
            labels,
            _percentile_series(results.latency, w, "latency")
            + _percentile_series(results.ttft, w, "first token"),
            note="Cache hits are left out.",
        ),
        Chart(
            "errors",
            "Error rate",
            "line",
            "pct",
            labels,
            [Series("errors", error_rate, color="--error", filter={"status": "error"})],
        ),
        Chart(
            "cache",
            "Cache hit rate",
            "line",
            "pct",
            labels,
            [Series("cache hits", hit_rate, color="--cache", filter={"cacheHit": "true"})],
        ),
        Chart(
            "saved",
            "Cost saved by the cache",
            "bar",
            "usd",
            labels,
            [Series("saved", saved, color="--cache", filter={"cacheHit": "true"})],
            empty_text="Nothing saved by the cache in this range.",
        ),
        Chart(
            "scores",
            "Scores over time (average)",
            "line",
            "score",
            labels,
            # Feedback has its own charts, on its own scale (1-5 stars are not a 0-1 score).
            [
                Series(trend.name, trend.averages, color="h")
                for trend in results.scores
                if not trend.name.startswith("feedback.")
            ],
            note="Evaluators' and API scores by the hour they were given; each name's average.",
            empty_text="No scores in this range: define an evaluator (Evaluations) or send feedback.",
            clickable=False,  # by the score's time, not the generation's
        ),
        Chart(
            "feedback",
            "Feedback over time (thumbs)",
            "bar",
            "count",
            labels,
            thumbs,
            note="By the time of the generation the feedback is on.",
            empty_text="No thumbs up or down in this range.",
        ),
        Chart(
            "rating",
            "Average rating (1–5 stars)",
            "line",
            "rating",
            labels,
            rating,
            note="By the time of the generation the feedback is on.",
            empty_text="No ratings in this range.",
        ),
        Chart(
            "user-trend",
            f"Requests by user (top {_TOP_KEYS} by cost)",
            "bar",
            "count",
            labels,
            _key_series(results.user_buckets, top_users, w, "userId"),
            empty_text="No requests with a user id in this range.",
        ),
        Chart(
            "template-trend",
            f"Requests by template (top {_TOP_KEYS} by cost)",
            "bar",
            "count",
            labels,
            _key_series(results.template_buckets, top_templates, w, "template.name"),
            empty_text="No requests from a named template in this range.",
        ),
        _ranking("users", "Top users by cost", results.users, filtered("userId")),
        _ranking("templates", "Top templates by cost", results.templates, filtered("template.name")),
    ]


def _spans(w: Window) -> list[tuple[str, str]]:
    """Each bucket's first and last moment, as the generations list reads ``from`` and ``to``."""
    return [(iso(w.bucket_start(i)), iso(min(w.bucket_start(i + 1), w.end_us) - 1)) for i in range(w.count)]


def bucket_links(w: Window, scope: dict[str, str]) -> dict[str, Any]:
    """What the script needs to open the generations of a bucket: the list's address with the page's
    scope, and each bucket's first and last moment."""
    return {"href": url_with("/generations", scope), "buckets": [list(span) for span in _spans(w)]}


def link_rows(charts: list[Chart], w: Window, scope: dict[str, str]) -> None:
    """Link the time of each table row that has data to its bucket's generations (what a click on the
    chart opens, for keyboards and browsers without scripts)."""
    urls = [
        url_with("/generations", {**scope, "range": "custom", "from": start, "to": end})
        for start, end in _spans(w)
    ]
    for chart in charts:
        if chart.kind == "hbar" or not chart.clickable:
            continue
        chart.links = [url if any(s.values[i] for s in chart.series) else None for i, url in enumerate(urls)]


def _summary(results: Results) -> dict[str, Any]:
    requests = sum(r.requests for r in results.usage)
    return {
        "requests": requests,
        "cost": sum(r.cost for r in results.usage),
        "tokens": sum(r.prompt_tokens + r.completion_tokens for r in results.usage),
        "error_rate": sum(r.errors for r in results.usage) / requests if requests else None,
        "cache_rate": sum(r.cache_hits for r in results.usage) / requests if requests else None,
        "saved": sum(r.cost_saved for r in results.usage),
        "unpriced": sum(r.unpriced for r in results.usage),
        "p50": results.latency.overall.p50,
        "p95": results.latency.overall.p95,
        "ttft50": results.ttft.overall.p50,
    }


def _pick_range(request: Request, view: View) -> tuple[TimeRange, bool]:
    """The range asked for, or (none asked) the one that fits the data; and whether it was fitted."""
    params = request.query_params
    asked = any(params.get(k, "").strip() for k in ("range", "from", "to"))
    span = None
    if not asked or params.get("range") == "all":
        with request.app.state.db.read() as conn:
            span = data_span(conn, view.project_id, view.environment)
    now = now_us()
    tr = parse_range(params, default=fitting_range(span, now), allow_all=True, now=now)
    if tr.from_us is None:  # all time: from the oldest generation (or the last day, when none)
        tr = TimeRange("all", span[0] if span else now - _DAY_US, tr.to_us, tr.label)
    return tr, not asked


@router.get("/analytics", include_in_schema=False)
def analytics_page(request: Request, view: ViewDep) -> Response:
    if view.project is None:
        return page(request, "empty.html", view=view, title="Analytics")
    try:
        tr, fitted = _pick_range(request, view)
    except InvalidInput as exc:
        return page(
            request,
            "error.html",
            status_code=400,
            view=view,
            title="Bad request",
            message=exc.message,
            status=400,
        )
    assert tr.from_us is not None
    w = window(tr.from_us, tr.to_us)
    results = _run_queries(request, view, w)
    charts = build_charts(results, w, view.scope, tr)
    link_rows(charts, w, view.scope)
    chart_data: dict[str, Any] = {c.id: c.data() for c in charts}
    chart_data["_links"] = bucket_links(w, view.scope)
    return page(
        request,
        "analytics.html",
        view=view,
        title="Analytics",
        range=tr,
        ranges=RANGES,
        fitted=fitted and tr.key != "24h",
        custom_from=input_value(tr.from_us) if tr.key == "custom" else "",
        custom_to=input_value(tr.to_us) if tr.key == "custom" else "",
        charts=charts,
        chart_data=chart_data,
        summary=_summary(results),
        bucket_hours=w.bucket_us / 3_600_000_000,
    )
