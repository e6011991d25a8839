"""Analytics: requests, tokens and cost by model, latency, errors, cache, top users and templates.

Each chart is drawn by the page's script from JSON in the page; the same numbers are in a table
under it, which is what a browser without JavaScript shows. The queries read one project's time
range each and run side by side on their own connections (they are independent reads).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from sqlalchemy import Connection
from starlette.responses import Response

from ...errors import InvalidInput
from ...store.evals.scores import ScoreTrend, score_trends
from ...store.generations.analytics import (
    CostRank,
    LatencySummary,
    ModelBucket,
    Window,
    latency_percentiles,
    top_by_cost,
    usage_by_model,
    window,
)
from .context import View, ViewDep
from .render import page, url_with
from .timerange import RANGES, TimeRange, input_value, parse_range

router = APIRouter()
T = TypeVar("T")
_DAY_US = 86_400 * 1_000_000
_MAX_MODELS = 8  # more models than this are summed as "other"


@dataclass
class Series:
    label: str
    values: list[float | None]


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

    def data(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "unit": self.unit,
            "labels": self.labels,
            "series": [{"label": s.label, "values": s.values} for s in self.series],
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


def _by_model(rows: Sequence[ModelBucket], w: Window, value: Callable[[ModelBucket], float]) -> list[Series]:
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
    return [Series(name, list(values)) for name, values in series.items()]


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
        users = pool.submit(read(lambda c: top_by_cost(c, pid, w, env, "user")))
        templates = pool.submit(read(lambda c: top_by_cost(c, pid, w, env, "template")))
        scores = pool.submit(read(lambda c: score_trends(c, pid, w, env)))
        return Results(
            usage.result(),
            latency.result(),
            ttft.result(),
            users.result(),
            templates.result(),
            scores.result(),
        )


def build_charts(results: Results, w: Window, scope: dict[str, str], tr: TimeRange) -> list[Chart]:
    """The charts of the analytics page, from the query results."""
    labels = _labels(w)
    error_rate, hit_rate, saved = _rates(results.usage, w)
    ranged = tr.params()

    def filtered(name: str) -> Callable[[str], str]:
        return lambda key: url_with("/generations", {**scope, **ranged, name: key})

    return [
        Chart(
            "requests",
            "Requests by model",
            "bar",
            "count",
            labels,
            _by_model(results.usage, w, lambda r: r.requests),
        ),
        Chart(
            "tokens",
            "Tokens by model",
            "bar",
            "tokens",
            labels,
            _by_model(results.usage, w, lambda r: r.prompt_tokens + r.completion_tokens),
        ),
        Chart("cost", "Cost by model", "bar", "usd", labels, _by_model(results.usage, w, lambda r: r.cost)),
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
        Chart("errors", "Error rate", "line", "pct", labels, [Series("errors", error_rate)]),
        Chart("cache", "Cache hit rate", "line", "pct", labels, [Series("cache hits", hit_rate)]),
        Chart(
            "saved",
            "Cost saved by the cache",
            "bar",
            "usd",
            labels,
            [Series("saved", saved)],
            empty_text="Nothing saved by the cache in this range.",
        ),
        Chart(
            "scores",
            "Scores over time (average)",
            "line",
            "score",
            labels,
            [Series(trend.name, trend.averages) for trend in results.scores],
            note="Evaluators' and people's scores by the hour they were given; each name's average.",
            empty_text="No scores in this range: define an evaluator (Evaluations) or send feedback.",
        ),
        _ranking("users", "Top users by cost", results.users, filtered("userId")),
        _ranking("templates", "Top templates by cost", results.templates, filtered("template.name")),
    ]


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


@router.get("/analytics", include_in_schema=False)
def analytics_page(request: Request, view: ViewDep) -> Response:
    if view.project is None:
        return page(request, "empty.html", view=view, title="Analytics")
    try:
        tr = parse_range(request.query_params, default="7d")
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
    return page(
        request,
        "analytics.html",
        view=view,
        title="Analytics",
        range=tr,
        ranges=RANGES,
        custom_from=input_value(tr.from_us) if tr.key == "custom" else "",
        custom_to=input_value(tr.to_us) if tr.key == "custom" else "",
        charts=charts,
        chart_data={c.id: c.data() for c in charts},
        summary=_summary(results),
        bucket_hours=w.bucket_us / 3_600_000_000,
    )
