"""Experiments: run a prompt version or a pipeline over a dataset, score each result with chosen
evaluators, and compare two experiments item by item."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from ...errors import InvalidInput
from ...evals.experiments import EXPERIMENT_KIND, check_target
from ...store.evals.datasets import get_dataset
from ...store.evals.evaluators import get_evaluator
from ...store.evals.experiments import (
    CreateExperiment,
    compare,
    experiment_results,
    get_experiment,
    list_experiments,
    summary,
)
from ...store.jobs import Enqueue
from ..auth import ApiKeyDep
from ..body import read_json
from ..responses import JSON

router = APIRouter(tags=["experiments"])

_MAX_ID = 2**31 - 1


def _id(value: Any, field: str) -> int:
    text = str(value)
    if not text.isascii() or not text.isdigit() or len(text) > 10 or int(text) > _MAX_ID:
        raise InvalidInput(f"{field}: an experiment's id", field=field)
    return int(text)


@router.post("/api/experiments", status_code=202, summary="Run a prompt version or pipeline over a dataset")
async def create(request: Request, key: ApiKeyDep) -> JSON:
    """Body: ``dataset`` (its name), ``datasetVersion`` (default: the current one), ``target``
    (``{"prompt", "version"?, "label"?, "model"?}`` or ``{"pipeline"}``), ``evaluators`` (names or
    ids), ``name``. 202 ``{"id", "jobId"}``; the experiment runs in the background."""
    body = await read_json(request)
    for name in sorted(set(body) - {"name", "dataset", "datasetVersion", "target", "evaluators"}):
        raise InvalidInput(f"{name}: unknown field of an experiment", field=name)
    evaluators = body.get("evaluators", [])
    if not isinstance(evaluators, list) or len(evaluators) > 20:
        raise InvalidInput("evaluators: a list of at most 20 evaluator names or ids", field="evaluators")
    version = body.get("datasetVersion")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise InvalidInput("datasetVersion: a version number", field="datasetVersion")
    if not isinstance(body.get("dataset"), str):
        raise InvalidInput("dataset: the name of a dataset", field="dataset")

    def check(conn: Any) -> tuple[Any, dict[str, Any], list[int]]:
        dataset = get_dataset(conn, key.project_id, body["dataset"], version)
        target = check_target(conn, key.project_id, body.get("target"))
        ids = []
        for i, ref in enumerate(evaluators):
            if not isinstance(ref, str | int) or isinstance(ref, bool):
                raise InvalidInput(f"evaluators[{i}]: a name or an id", field=f"evaluators[{i}]")
            ids.append(get_evaluator(conn, key.project_id, ref).id)
        return dataset, target, ids

    def read() -> tuple[Any, dict[str, Any], list[int]]:
        with request.app.state.db.read() as conn:
            return check(conn)

    dataset, target, ids = await run_in_threadpool(read)
    what = target.get("pipeline") or f"{target['prompt']} v{target['version']}"
    name = body.get("name") or f"{what} on {dataset.name} v{dataset.version}"
    if not isinstance(name, str) or len(name) > 200:
        raise InvalidInput("name: at most 200 characters", field="name")
    now = time.time_ns() // 1000
    settings = request.app.state.settings
    job = Enqueue(
        EXPERIMENT_KIND, {"environment": key.environment}, now, settings.job_max_attempts, key.project_id
    )
    op = CreateExperiment(key.project_id, name, dataset.id, dataset.version, target, ids, job, now)
    experiment_id, job_id = await request.app.state.db.writer.write(op)
    request.app.state.jobs.wake()
    return JSON({"id": experiment_id, "jobId": job_id, "name": name}, status_code=202)


@router.get("/api/experiments", summary="The project's experiments, newest first")
def list_(request: Request, key: ApiKeyDep) -> JSON:
    with request.app.state.db.read() as conn:
        return JSON({"data": [e.wire() for e in list_experiments(conn, key.project_id)]})


@router.get("/api/experiments/compare", summary="Two experiments side by side, item by item")
def compare_(a: str, b: str, request: Request, key: ApiKeyDep) -> JSON:
    with request.app.state.db.read() as conn:
        return JSON(compare(conn, key.project_id, _id(a, "a"), _id(b, "b")))


@router.get("/api/experiments/{experiment_id}", summary="One experiment: its summary and each item's result")
def get(experiment_id: str, request: Request, key: ApiKeyDep) -> JSON:
    with request.app.state.db.read() as conn:
        experiment = get_experiment(conn, key.project_id, _id(experiment_id, "id"))
        results = experiment_results(conn, experiment)
    return JSON({**experiment.wire(), "summary": summary(results), "results": results})
