"""Prometheus metrics of one server process, at ``/metrics``.

Generations are counted where every road meets: the writer (``QueuedWriter.observe``) reports each
committed :class:`InsertGenerations`, whether it came by ingest, the gateway, a pipeline, an experiment,
a judge or a compatibility endpoint, and only the new ones count. Label sets are bounded: projects by
id, environments and statuses as they are, models up to :data:`MAX_MODELS` names per process (then
``other``); never a user id. ``deploy/grafana-dashboard.json`` is a board built on these.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from ..store import Database
from ..store import tables as t
from ..store.engine.writer import WriteOp
from ..store.generations.ingest import InsertGenerations
from ..store.tables.generations import GenerationColumn as G

__all__ = ["MAX_MODELS", "Metrics"]

MAX_MODELS = 200
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 120)


class _Jobs(Collector):
    """Jobs in the queue by kind and state, read when scraped (one GROUP BY on a small table)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "sightline_jobs", "Background jobs in the queue by kind and state", labels=["kind", "state"]
        )
        j = t.jobs
        try:
            with self._db.read() as conn:
                rows = conn.execute(
                    select(j.c.kind, j.c.state, func.count()).group_by(j.c.kind, j.c.state)
                ).all()
        except Exception:  # noqa: BLE001 - a scrape while the database is away shows no jobs
            rows = []
        for kind, state, n in rows:
            family.add_metric([kind, state], float(n))
        yield family


class Metrics:
    """The metrics a server exposes at ``/metrics``, in a registry of its own (one per app)."""

    def __init__(self, db: Database) -> None:
        self.registry = r = CollectorRegistry()
        self.ingested = Counter(
            "sightline_generations_ingested", "Generations written by ingestion (new ones)", registry=r
        )
        self.ingest_items = Counter(
            "sightline_ingest_items",
            "Records received for ingestion, by type and outcome",
            ["type", "outcome"],
            registry=r,
        )
        self.ingest_latency = Histogram(
            "sightline_ingest_seconds",
            "Time from receiving an ingest request to its commit",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        labels = ["project", "environment", "model", "status"]
        self.generations = Counter(
            "sightline_generations", "Generations recorded, by every road", labels, registry=r
        )
        self.tokens = Counter(
            "sightline_tokens",
            "Tokens of recorded generations",
            ["project", "environment", "model", "kind"],
            registry=r,
        )
        self.cost = Counter(
            "sightline_cost_usd",
            "Cost of recorded generations (USD)",
            ["project", "environment", "model"],
            registry=r,
        )
        self.latency = Histogram(
            "sightline_generation_latency_seconds",
            "Latency of recorded generations",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "sightline_time_to_first_token_seconds",
            "Time to first token of streamed generations",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.gateway_requests = Counter(
            "sightline_gateway_requests",
            "Gateway model calls answered, by status and cache result",
            ["status", "cache"],
            registry=r,
        )
        self.cache_hits = 0
        self.cache_lookups = 0
        hit_ratio = Gauge(
            "sightline_cache_hit_ratio",
            "Cache hits of the gateway calls that looked in the cache",
            registry=r,
        )
        hit_ratio.set_function(lambda: self.cache_hits / self.cache_lookups if self.cache_lookups else 0.0)
        self.write_seconds = Histogram(
            "sightline_write_seconds",
            "Time from handing a write to the writer to its commit (queue wait and transaction)",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
            registry=r,
        )
        self.queue_depth = Gauge(
            "sightline_write_queue_depth", "Write operations waiting for the writer", registry=r
        )
        self.queue_depth.set_function(db.writer.depth)
        self.commits = Gauge("sightline_write_commits", "Transactions the writer has committed", registry=r)
        self.commits.set_function(lambda: db.writer.commits)
        r.register(_Jobs(db))
        self._models: set[str] = set()
        self._lock = threading.Lock()
        db.writer.observe(self.written)

    def _model(self, name: str) -> str:
        if name in self._models:
            return name
        with self._lock:
            if len(self._models) < MAX_MODELS:
                self._models.add(name)
                return name
        return "other"

    def written(self, op: WriteOp, answer: Any, seconds: float) -> None:
        """A write committed: time it, and count the generations it created."""
        self.write_seconds.observe(seconds)
        if not isinstance(op, InsertGenerations) or not isinstance(answer, list):
            return
        project, environment = str(op.scope.project_id), op.scope.environment
        for row, created in zip(op.rows, answer, strict=False):
            if not created:
                continue
            model = self._model(str(row[G.model_id]))
            self.generations.labels(project, environment, model, row[G.status]).inc()
            self.tokens.labels(project, environment, model, "prompt").inc(row[G.prompt_tokens] or 0)
            self.tokens.labels(project, environment, model, "completion").inc(row[G.completion_tokens] or 0)
            if row[G.cost] is not None:
                self.cost.labels(project, environment, model).inc(max(0.0, row[G.cost]))
            self.latency.labels(model).observe((row[G.latency_ms] or 0) / 1000)
            if row[G.ttft_ms] is not None:
                self.ttft.labels(model).observe(row[G.ttft_ms] / 1000)

    def call_finished(self, call: Any) -> None:
        """A gateway model call (``gateway.Call``) was answered."""
        cache = "hit" if call.cache_hit else "miss" if call.cache_key is not None else "off"
        self.gateway_call(call.status, cache)

    def gateway_call(self, status: int, cache: str) -> None:
        """A gateway model call was answered: ``cache`` is ``hit``, ``miss`` or ``off``."""
        self.gateway_requests.labels(str(status or 0), cache).inc()
        if cache != "off":
            self.cache_lookups += 1
            self.cache_hits += cache == "hit"
