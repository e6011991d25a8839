"""Experiments: a prompt version (or a pipeline) run over a dataset's items, each result scored by
chosen evaluators; and the comparison of two experiments item by item.

An experiment's results are written a batch at a time with the batch's scores and the job's progress
(``evals.experiments`` runs it), so a stopped experiment resumes without running an item twice.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update

from ...errors import InvalidInput, NotFound
from .. import tables as t
from ..generations.records import iso
from .scores import write_scores

__all__ = [
    "CreateExperiment",
    "Experiment",
    "FinishExperiment",
    "RecordResults",
    "compare",
    "experiment_results",
    "get_experiment",
    "list_experiments",
]

x, xi, sc = t.experiments, t.experiment_items, t.scores


@dataclass(frozen=True, slots=True)
class Experiment:
    id: int
    project_id: int
    name: str
    dataset_id: int
    dataset_version: int
    target: dict[str, Any]
    evaluator_ids: list[int]
    status: str
    job_id: int | None
    created_us: int
    finished_us: int | None

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "datasetId": self.dataset_id,
            "datasetVersion": self.dataset_version,
            "target": self.target,
            "evaluatorIds": self.evaluator_ids,
            "status": self.status,
            "jobId": self.job_id,
            "createdAt": iso(self.created_us),
            "finishedAt": iso(self.finished_us) if self.finished_us else None,
        }


def _experiment(row: Any) -> Experiment:
    return Experiment(
        row.id,
        row.project_id,
        row.name,
        row.dataset_id,
        row.dataset_version,
        dict(row.target),
        list(row.evaluator_ids),
        row.status,
        row.job_id,
        row.created_us,
        row.finished_us,
    )


@dataclass(slots=True)
class CreateExperiment:
    """Record a new experiment (``queued``) and its job; answers its id."""

    project_id: int
    name: str
    dataset_id: int
    dataset_version: int
    target: dict[str, Any]
    evaluator_ids: list[int]
    job: Any  # the Enqueue of its job, written in the same transaction
    now_us: int
    size: int = 1

    def apply(self, conn: Connection) -> tuple[int, int]:
        experiment_id = int(
            conn.execute(
                insert(x)
                .values(
                    project_id=self.project_id,
                    name=self.name,
                    dataset_id=self.dataset_id,
                    dataset_version=self.dataset_version,
                    target=self.target,
                    evaluator_ids=self.evaluator_ids,
                    status="queued",
                    created_us=self.now_us,
                )
                .returning(x.c.id)
            ).scalar_one()
        )
        self.job.payload = {**self.job.payload, "experimentId": experiment_id}
        job_id = int(self.job.apply(conn))
        conn.execute(update(x).where(x.c.id == experiment_id).values(job_id=job_id))
        return experiment_id, job_id


@dataclass(slots=True)
class RecordResults:
    """Record a batch of an experiment's results (``experiment_items`` rows) with their scores."""

    experiment_id: int
    results: list[dict[str, Any]]
    scores: list[dict[str, Any]]
    size: int = 1

    def apply(self, conn: Connection) -> int:
        conn.execute(
            update(x).where(x.c.id == self.experiment_id, x.c.status == "queued").values(status="running")
        )
        if self.results:
            conn.execute(insert(xi), [{"experiment_id": self.experiment_id, **r} for r in self.results])
        write_scores(conn, self.scores)
        return len(self.results)


@dataclass(slots=True)
class FinishExperiment:
    experiment_id: int
    status: str
    now_us: int
    size: int = 1

    def apply(self, conn: Connection) -> dict[str, Any]:
        conn.execute(
            update(x).where(x.c.id == self.experiment_id).values(status=self.status, finished_us=self.now_us)
        )
        return {"experimentId": self.experiment_id, "status": self.status}


def get_experiment(conn: Connection, project_id: int, experiment_id: int) -> Experiment:
    row = conn.execute(select(x).where(x.c.project_id == project_id, x.c.id == experiment_id)).first()
    if row is None:
        raise NotFound(f"no experiment {experiment_id} in this project")
    return _experiment(row)


def list_experiments(conn: Connection, project_id: int, limit: int = 200) -> list[Experiment]:
    q = select(x).where(x.c.project_id == project_id).order_by(x.c.created_us.desc()).limit(limit)
    return [_experiment(r) for r in conn.execute(q)]


def done_items(conn: Connection, experiment_id: int) -> set[int]:
    """The dataset items an experiment has a result for already."""
    return set(conn.execute(select(xi.c.item_id).where(xi.c.experiment_id == experiment_id)).scalars())


def experiment_results(conn: Connection, experiment: Experiment) -> list[dict[str, Any]]:
    """Each item's result with its input, expected output and the experiment's evaluators' scores."""
    di = t.dataset_items
    rows = conn.execute(
        select(xi, di.c.input, di.c.expected_output)
        .join(di, di.c.id == xi.c.item_id)
        .where(xi.c.experiment_id == experiment.id)
        .order_by(xi.c.item_id)
    ).all()
    gen_ids = [r.generation_id for r in rows if r.generation_id]
    run_ids = [r.run_id for r in rows if r.run_id]
    scored: dict[str, dict[str, Any]] = {}
    for column, ids in ((sc.c.generation_id, gen_ids), (sc.c.run_id, run_ids)):
        for i in range(0, len(ids), 500):
            q = (
                select(sc)
                .where(
                    sc.c.project_id == experiment.project_id,
                    column.in_(ids[i : i + 500]),
                    sc.c.evaluator_id.in_(experiment.evaluator_ids or [-1]),
                )
                .order_by(sc.c.id)
            )
            for s in conn.execute(q):
                target = s.generation_id or s.run_id
                scored.setdefault(target, {})[s.name] = (
                    {"value": s.value, "label": s.label, "comment": s.comment}
                    if s.error is None
                    else {"error": s.error}
                )
    return [
        {
            "itemId": r.item_id,
            "input": r.input,
            "expectedOutput": r.expected_output,
            "output": r.output,
            "error": r.error,
            "generationId": r.generation_id,
            "runId": r.run_id,
            "latencyMs": r.latency_ms,
            "cost": r.cost,
            "totalTokens": r.total_tokens,
            "scores": scored.get(r.generation_id or r.run_id or "", {}),
        }
        for r in rows
    ]


def summary(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Totals of an experiment's results: items, errors, cost, latency p50, each score's average."""
    values: dict[str, list[float]] = {}
    for r in results:
        for name, s in r["scores"].items():
            if s.get("value") is not None:
                values.setdefault(name, []).append(s["value"])
    latencies = [r["latencyMs"] for r in results if r["latencyMs"] is not None]
    costs = [r["cost"] for r in results if r["cost"] is not None]
    return {
        "items": len(results),
        "errors": sum(1 for r in results if r["error"]),
        "cost": sum(costs) if costs else None,
        "latencyP50": statistics.median(latencies) if latencies else None,
        "tokens": sum(r["totalTokens"] or 0 for r in results),
        "scores": {name: statistics.fmean(v) for name, v in sorted(values.items())},
    }


def compare(conn: Connection, project_id: int, a: int, b: int) -> dict[str, Any]:
    """Two experiments side by side: each one's summary, and item by item (matched by dataset item)
    their outputs and scores, with which items got better or worse by each score."""
    first, second = get_experiment(conn, project_id, a), get_experiment(conn, project_id, b)
    if first.dataset_id != second.dataset_id:
        raise InvalidInput("b: the experiments ran over different datasets", field="b")
    left = {r["itemId"]: r for r in experiment_results(conn, first)}
    right = {r["itemId"]: r for r in experiment_results(conn, second)}
    items: list[dict[str, Any]] = []
    better: dict[str, int] = {}
    worse: dict[str, int] = {}
    for item_id in sorted(set(left) | set(right)):
        ra, rb = left.get(item_id), right.get(item_id)
        deltas: dict[str, float] = {}
        for name in sorted(set((ra or {}).get("scores", {})) | set((rb or {}).get("scores", {}))):
            va = ((ra or {}).get("scores", {}).get(name) or {}).get("value")
            vb = ((rb or {}).get("scores", {}).get(name) or {}).get("value")
            if va is not None and vb is not None:
                deltas[name] = vb - va
                if vb > va:
                    better[name] = better.get(name, 0) + 1
                elif vb < va:
                    worse[name] = worse.get(name, 0) + 1
        base = ra or rb or {}
        items.append(
            {
                "itemId": item_id,
                "input": base.get("input"),
                "expectedOutput": base.get("expectedOutput"),
                "a": ra,
                "b": rb,
                "deltas": deltas,
            }
        )
    return {
        "a": {**first.wire(), "summary": summary(list(left.values()))},
        "b": {**second.wire(), "summary": summary(list(right.values()))},
        "better": better,
        "worse": worse,
        "items": items,
    }
