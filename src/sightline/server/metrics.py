"""Prometheus metrics of one server process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..store import Database

__all__ = ["Metrics"]


class Metrics:
    """The metrics a server exposes at ``/metrics``, in a registry of its own (one per app)."""

    def __init__(self, db: Database) -> None:
        self.registry = CollectorRegistry()
        self.ingested = Counter(
            "sightline_generations_ingested", "Generations written (new ones)", registry=self.registry
        )
        self.ingest_items = Counter(
            "sightline_ingest_items",
            "Records received for ingestion, by type and outcome",
            ["type", "outcome"],
            registry=self.registry,
        )
        self.ingest_latency = Histogram(
            "sightline_ingest_seconds",
            "Time from receiving an ingest request to its commit",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "sightline_write_queue_depth", "Write operations waiting for the writer", registry=self.registry
        )
        self.queue_depth.set_function(db.writer.depth)
        self.commits = Gauge(
            "sightline_write_commits", "Transactions the writer has committed", registry=self.registry
        )
        self.commits.set_function(lambda: db.writer.commits)
