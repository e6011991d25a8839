"""Experiments: a prompt version or a pipeline run over a dataset through the gateway, each result
scored by the chosen evaluators, as a job (``evals.experiment``) on the one queue.

Each item's input gives the prompt its arguments: an object by their names, anything else the one
argument of a prompt that takes one. The call goes through the gateway's own path (the stored
provider, the cache, pricing, recording) with the prompt's version as its template, so the
experiment's generations show under that version. The dataset item's ``expectedOutput`` is the
``{reference}`` of the evaluators. Results and their scores commit a batch at a time with the job's
progress: a stopped experiment resumes with the items it has not run.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Mapping
from typing import Any, TypeVar

import orjson
from sqlalchemy import Connection

from ..errors import InvalidInput, NotFound, SightlineError
from ..gateway import Context, answer_text
from ..pipelines.service import call_pipeline
from ..store import tables as t
from ..store.evals.datasets import Dataset, get_dataset, list_items
from ..store.evals.evaluators import get_evaluator
from ..store.evals.experiments import (
    Experiment,
    FinishExperiment,
    RecordResults,
    done_items,
    get_experiment,
)
from ..store.generations.pricing import price
from ..store.jobs import Job, Progress
from ..store.pipelines import get_pipeline
from ..store.prompts import Prompt, get_prompt
from .evaluator import Runnable, Services, evaluator_caller

__all__ = ["EXPERIMENT_KIND", "check_target", "run_experiment"]

EXPERIMENT_KIND = "evals.experiment"
T = TypeVar("T")
_BATCH = 50


def check_target(conn: Connection, project_id: int, body: Any) -> dict[str, Any]:
    """What an experiment runs: ``{"prompt": name, "version"?, "label"?, "model"?}`` or
    ``{"pipeline": name}``, checked."""
    if not isinstance(body, Mapping):
        raise InvalidInput(
            "target: expected {prompt, version?, label?, model?} or {pipeline}", field="target"
        )
    if "pipeline" in body:
        for key in sorted(set(body) - {"pipeline"}):
            raise InvalidInput(
                f"target.{key}: a pipeline target names only the pipeline", field=f"target.{key}"
            )
        name = body["pipeline"]
        if not isinstance(name, str) or get_pipeline(conn, project_id, name=name) is None:
            raise InvalidInput(
                f"target.pipeline: no pipeline {name!r} in this project", field="target.pipeline"
            )
        return {"pipeline": name}
    for key in sorted(set(body) - {"prompt", "version", "label", "model"}):
        raise InvalidInput(f"target.{key}: unknown field of a target", field=f"target.{key}")
    name, version, label, model = (
        body.get("prompt"),
        body.get("version"),
        body.get("label"),
        body.get("model"),
    )
    if not isinstance(name, str) or not name:
        raise InvalidInput(
            "target.prompt: the name of a prompt (or give target.pipeline)", field="target.prompt"
        )
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise InvalidInput("target.version: a version number", field="target.version")
    if label is not None and not isinstance(label, str):
        raise InvalidInput("target.label: a label's name", field="target.label")
    if model is not None and (not isinstance(model, str) or not 0 < len(model) <= 200):
        raise InvalidInput("target.model: a model's name", field="target.model")
    prompt = _prompt(conn, project_id, {"prompt": name, "version": version, "label": label})
    if not (model or prompt.model):
        raise InvalidInput("target.model: the prompt's version has no model: give one", field="target.model")
    # The version is fixed now, whatever the label points at later.
    return {"prompt": name, "version": prompt.version, "model": model or prompt.model}


def _prompt(conn: Connection, project_id: int, target: Mapping[str, Any]) -> Prompt:
    found = get_prompt(
        conn, project_id, target["prompt"], version=target.get("version"), label=target.get("label")
    )
    if found is None:
        raise InvalidInput(
            f"target.prompt: no such prompt or version {target['prompt']!r}", field="target.prompt"
        )
    return found


def _arguments(prompt: Prompt, given: Any) -> dict[str, str]:
    def text(value: Any) -> str:
        return value if isinstance(value, str) else orjson.dumps(value).decode()

    if isinstance(given, Mapping) and all(arg in given for arg in prompt.args):
        return {arg: text(given[arg]) for arg in prompt.args}
    if len(prompt.args) == 1:
        return {prompt.args[0]: text(given)}
    if not prompt.args:
        return {}
    raise ValueError(f"the item's input gives none of the prompt's arguments {', '.join(prompt.args)}")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else orjson.dumps(value).decode()


class _Run:
    """One experiment being run: its target, evaluators and the gateway caller."""

    def __init__(self, services: Services, experiment: Experiment, environment: str) -> None:
        self.services = services
        self.experiment = experiment
        self.environment = environment
        self.caller = evaluator_caller(experiment.project_id, environment)

    async def item(self, item: Mapping[str, Any], prompt: Prompt | None) -> dict[str, Any]:
        target = self.experiment.target
        started = time.perf_counter()
        result: dict[str, Any] = {
            "item_id": item["id"],
            "generation_id": None,
            "run_id": None,
            "output": None,
        }
        result.update(error=None, latency_ms=None, cost=None, total_tokens=None)
        try:
            if prompt is None:
                answer = await call_pipeline(
                    db=self.services.db,
                    settings=self.services.settings,
                    gateway=self.services.gateway,
                    sandbox=self.services.sandbox,
                    caller=self.caller,
                    body={"pipeline_name": target["pipeline"], "args": item["input"]},
                )
                result.update(run_id=answer.run_id, output=answer.response)
            else:
                args = _arguments(prompt, item["input"])
                body = prompt.request(args)
                body["model"] = target["model"]
                context = Context(
                    template=prompt.recorded_template(args),
                    metadata={"experiment": str(self.experiment.id), "datasetItem": str(item["id"])},
                )
                reply = await self.services.gateway.model_call(
                    self.caller, "chat/completions", body, context, forward={}, default_cache="use"
                )
                try:
                    parsed = orjson.loads(reply.body or b"null")
                finally:
                    reply.finish()
                result["generation_id"] = reply.call.generation_id if reply.call is not None else None
                if reply.status >= 400:
                    failed = parsed.get("error") if isinstance(parsed, dict) else None
                    message = failed.get("message") if isinstance(failed, dict) else None
                    raise ValueError(f"the model call failed ({reply.status}): {message or ''}"[:500])
                result["output"] = answer_text("chat", parsed)
                usage = parsed.get("usage") if isinstance(parsed, dict) else None
                if isinstance(usage, dict):
                    pt, ct = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
                    result["total_tokens"] = pt + ct
                    result["cost"] = price(target["model"], None, pt, ct)
        except (SightlineError, ValueError, orjson.JSONDecodeError) as exc:
            result["error"] = (exc.message if isinstance(exc, SightlineError) else str(exc))[:2000]
        result["latency_ms"] = (time.perf_counter() - started) * 1000
        return result

    def record(self, item: Mapping[str, Any], result: Mapping[str, Any]) -> dict[str, Any]:
        """A result as a generation record, for the evaluators."""
        return {
            "id": result["generation_id"] or result["run_id"],
            "environment": self.environment,
            "input": {"content": item["input"]},
            "output": {"content": result["output"]},
            "usage": {"cost": result["cost"], "totalTokens": result["total_tokens"]},
            "performance": {"latency": result["latency_ms"]},
            "metadata": item.get("metadata") or {},
        }


async def run_experiment(services: Services, job: Job) -> Any:
    """The ``evals.experiment`` job: the items not run yet, a batch at a time."""
    db, project_id = services.db, job.project_id
    if project_id is None:
        raise InvalidInput("an experiment belongs to a project")
    experiment_id = int(job.payload["experimentId"])

    def plan(conn: Connection) -> tuple[Experiment, Dataset, list[Runnable], Prompt | None, set[int]]:
        experiment = get_experiment(conn, project_id, experiment_id)
        dataset = _dataset(conn, experiment)
        runnables = [
            Runnable.load(conn, get_evaluator(conn, project_id, i)) for i in experiment.evaluator_ids
        ]
        prompt = _prompt(conn, project_id, experiment.target) if "prompt" in experiment.target else None
        return experiment, dataset, runnables, prompt, done_items(conn, experiment.id)

    experiment, dataset, runnables, prompt, done = await db.read_in_thread(plan)
    run = _Run(services, experiment, str(job.payload.get("environment") or "default"))
    progress = {"done": len(done), "total": dataset.items, "errors": 0, **(job.result or {})}
    progress["total"] = dataset.items
    limit = asyncio.Semaphore(services.settings.eval_concurrency)

    async def one(item: Mapping[str, Any]) -> dict[str, Any]:
        async with limit:
            return await run.item(item, prompt)

    after = 0
    while True:
        page = await db.read_in_thread(
            functools.partial(list_items, dataset=dataset, after=after, limit=_BATCH)
        )
        if not page:
            break
        after = page[-1]["id"]
        items = [i for i in page if i["id"] not in done]
        if not items:
            continue
        results = list(await asyncio.gather(*(one(item) for item in items)))
        scored = [(i, r) for i, r in zip(items, results, strict=True) if r["error"] is None]
        records = [run.record(i, r) for i, r in scored]
        references = {
            rec["id"]: _text(i.get("expectedOutput")) for (i, _), rec in zip(scored, records, strict=True)
        }
        rows: list[dict[str, Any]] = []
        for runnable in runnables:
            rows += await runnable.score(services, records, references)
        if "pipeline" in experiment.target:
            for row in rows:
                row["run_id"], row["generation_id"] = row["generation_id"], None
        progress["done"] += len(items)
        progress["errors"] += sum(1 for r in results if r["error"])
        await db.writer.write(
            Progress(job.id, job.worker, dict(progress), RecordResults(experiment.id, results, rows))
        )
    return FinishExperiment(experiment.id, "succeeded", time.time_ns() // 1000)


def _dataset(conn: Connection, experiment: Experiment) -> Dataset:
    row = conn.execute(t.datasets.select().where(t.datasets.c.id == experiment.dataset_id)).first()
    if row is None:
        raise NotFound("the experiment's dataset is gone")
    return get_dataset(conn, experiment.project_id, row.name, experiment.dataset_version)
