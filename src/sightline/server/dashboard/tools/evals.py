"""Evaluations in the dashboard: evaluators, datasets and experiments.

* ``/evaluators``: each evaluator with its version, what it evaluates online (filter, sample rate)
  and the last day's results (evaluations, error rate, average, labels); admins define one.
* ``/evaluators/{id}``: its recent scores and failures (a judge's reasoning, a link to the judge's
  own generation), its attachment form, and a backfill: the count (and a judge's cost estimate)
  shown before it runs, then the job's progress.
* ``/datasets``, ``/datasets/{name}``: datasets and their items; made from a filter of generations;
  downloaded as fine-tuning chat JSONL, eval JSONL or CSV.
* ``/experiments``, ``/experiments/{id}``, ``/experiments/compare?a=&b=``: experiments, their
  results, and two side by side (per-item outputs, score averages, cost and latency, which items got
  better or worse).

Every change goes through the same checks and writes as the API.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from ....errors import InvalidInput, SightlineError
from ....evals.evaluator import EVALUATOR_TYPES, check_definition, check_filter, check_rate
from ....evals.experiments import EXPERIMENT_KIND, check_target
from ....evals.jobs import BACKFILL_KIND
from ....store.evals import score_wire
from ....store.evals.datasets import (
    EXPORT_FORMATS,
    AddItems,
    export_items,
    get_dataset,
    list_datasets,
    list_items,
)
from ....store.evals.evaluators import (
    SaveEvaluator,
    UpdateAttachment,
    estimate,
    evaluator_stats,
    get_evaluator,
    list_evaluators,
    recent_results,
)
from ....store.evals.experiments import (
    CreateExperiment,
    compare,
    experiment_results,
    get_experiment,
    list_experiments,
    summary,
)
from ....store.jobs import Enqueue, get_job
from ....store.prompts import list_prompts
from ...auth import actor
from ...routers.datasets import from_generations
from ..core.context import AdminDep, FormDep, View, ViewDep
from ..core.render import page, redirect, url_with

__all__ = ["router"]

router = APIRouter()
_DAY_US = 86_400_000_000


def _json_field(form: Any, name: str, default: Any) -> Any:
    text = str(form.get(name) or "").strip()
    if not text:
        return default
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{name}: not valid JSON ({exc.msg}, line {exc.lineno})", field=name) from None


def _now() -> int:
    return time.time_ns() // 1000


# evaluators


def _evaluators_page(request: Request, view: View, status_code: int = 200, **context: Any) -> Response:
    rows = []
    if view.project is not None:
        since = _now() - _DAY_US
        with request.app.state.db.read() as conn:
            rows = [
                (ev, evaluator_stats(conn, view.project_id, ev.id, since))
                for ev in list_evaluators(conn, view.project_id)
            ]
    context.setdefault("form", {"type": "json_valid", "config": "{}", "filter": "", "sampleRate": "1"})
    return page(
        request,
        "evaluators.html",
        status_code=status_code,
        view=view,
        title="Evaluators",
        evaluators=rows,
        types=EVALUATOR_TYPES,
        **context,
    )


@router.get("/evaluators", include_in_schema=False)
def evaluators_page(request: Request, view: ViewDep) -> Response:
    return _evaluators_page(request, view)


@router.post("/evaluators/_new", include_in_schema=False)
async def save_evaluator(request: Request, view: AdminDep, form: FormDep) -> Response:
    fields = {
        k: str(form.get(k) or "") for k in ("name", "type", "config", "filter", "sampleRate", "scoreName")
    }
    try:
        body: dict[str, Any] = {
            "name": fields["name"],
            "type": fields["type"],
            "config": _json_field(form, "config", {}),
            "filter": _json_field(form, "filter", None),
            "sampleRate": float(fields["sampleRate"] or 1),
        }
        if fields["scoreName"]:
            body["scoreName"] = fields["scoreName"]
        with request.app.state.db.read() as conn:
            definition = check_definition(conn, view.project_id, body)
    except ValueError:
        return _evaluators_page(request, view, 400, form=fields, error="sampleRate: a number from 0 to 1")
    except InvalidInput as error:
        return _evaluators_page(request, view, 400, form=fields, error=error.message)
    saved = await request.app.state.db.writer.write(
        SaveEvaluator(
            view.project_id,
            definition.name,
            definition.type,
            definition.config,
            definition.score_name,
            definition.filter,
            definition.sample_rate,
            definition.enabled,
            actor(request, view.user),
            _now(),
        )
    )
    return redirect(request, url_with(f"/evaluators/{saved.id}", view.scope))


def _evaluator_page(
    request: Request, view: View, ref: int, status_code: int = 200, **context: Any
) -> Response:
    with request.app.state.db.read() as conn:
        ev = get_evaluator(conn, view.project_id, ref)
        stats = evaluator_stats(conn, view.project_id, ev.id, _now() - _DAY_US)
        recent = [score_wire(r) for r in recent_results(conn, view.project_id, ev.id, 50)]
        job = get_job(conn, view.project_id, int(context["job_id"])) if context.get("job_id") else None
    return page(
        request,
        "evaluator.html",
        status_code=status_code,
        view=view,
        title=ev.name,
        ev=ev,
        config=json.dumps(ev.config, indent=2, ensure_ascii=False),
        filter_text=json.dumps(ev.filter, ensure_ascii=False) if ev.filter is not None else "",
        stats=stats,
        recent=recent,
        job=job,
        **context,
    )


@router.get("/evaluators/{evaluator_id:int}", include_in_schema=False)
def evaluator_page(evaluator_id: int, request: Request, view: ViewDep, job: int | None = None) -> Response:
    return _evaluator_page(request, view, evaluator_id, job_id=job)


@router.post("/evaluators/{evaluator_id:int}/_attach", include_in_schema=False)
async def attach(evaluator_id: int, request: Request, view: AdminDep, form: FormDep) -> Response:
    try:
        flt = check_filter(_json_field(form, "filter", None))
        rate = check_rate(float(str(form.get("sampleRate") or "1")))
    except ValueError:
        return _evaluator_page(request, view, evaluator_id, 400, error="sampleRate: a number from 0 to 1")
    except InvalidInput as error:
        return _evaluator_page(request, view, evaluator_id, 400, error=error.message)
    op = UpdateAttachment(
        view.project_id,
        evaluator_id,
        flt,
        flt is None,
        rate,
        form.get("enabled") == "on",
        actor(request, view.user),
        _now(),
    )
    await request.app.state.db.writer.write(op)
    return redirect(request, url_with(f"/evaluators/{evaluator_id}", view.scope))


@router.post("/evaluators/{evaluator_id:int}/_run", include_in_schema=False)
async def backfill(evaluator_id: int, request: Request, view: AdminDep, form: FormDep) -> Response:
    """First the count and cost of what the filter takes; with ``confirm``, the backfill job."""
    try:
        flt = check_filter(_json_field(form, "runFilter", {})) or {}
    except InvalidInput as error:
        return _evaluator_page(request, view, evaluator_id, 400, error=error.message)
    with request.app.state.db.read() as conn:
        ev = get_evaluator(conn, view.project_id, evaluator_id)
        guess = estimate(
            conn, view.project_id, flt, ev.config.get("model") if ev.type == "llm_judge" else None
        )
    run_filter = json.dumps(flt, ensure_ascii=False)
    if form.get("confirm") != "yes":
        return _evaluator_page(request, view, evaluator_id, estimate=guess, run_filter=run_filter)
    job_id = await request.app.state.jobs.enqueue(
        BACKFILL_KIND, {"evaluatorId": ev.id, "filter": flt}, project_id=view.project_id
    )
    return redirect(request, url_with(f"/evaluators/{evaluator_id}", view.scope, job=job_id))


# datasets


def _datasets_page(request: Request, view: View, status_code: int = 200, **context: Any) -> Response:
    rows = []
    if view.project is not None:
        with request.app.state.db.read() as conn:
            rows = list_datasets(conn, view.project_id)
    context.setdefault("form", {"name": "", "filter": "{}", "expected": "output", "limit": "1000"})
    return page(
        request,
        "datasets.html",
        status_code=status_code,
        view=view,
        title="Datasets",
        datasets=rows,
        **context,
    )


@router.get("/datasets", include_in_schema=False)
def datasets_page(request: Request, view: ViewDep) -> Response:
    return _datasets_page(request, view)


@router.post("/datasets/_new", include_in_schema=False)
async def new_dataset(request: Request, view: AdminDep, form: FormDep) -> Response:
    fields = {k: str(form.get(k) or "") for k in ("name", "filter", "expected", "limit")}
    try:
        name = fields["name"].strip()
        if not name or len(name) > 200:
            raise InvalidInput("name: 1 to 200 characters", field="name")
        flt = check_filter(_json_field(form, "filter", {}), "filter") or {}
        expected = fields["expected"] if fields["expected"] in ("output", "betterResponse") else "output"
        limit = max(1, min(int(fields["limit"] or 1000), 10_000))
        items = from_generations(request, view.project_id, flt, expected, limit)
    except ValueError:
        return _datasets_page(request, view, 400, form=fields, error="limit: a whole number")
    except InvalidInput as error:
        return _datasets_page(request, view, 400, form=fields, error=error.message)
    await request.app.state.db.writer.write(
        AddItems(view.project_id, name, None, items, actor(request, view.user), _now())
    )
    return redirect(request, url_with(f"/datasets/{name}", view.scope))


@router.get("/datasets/{name}", include_in_schema=False)
def dataset_page(
    name: str, request: Request, view: ViewDep, version: int | None = None, after: int = 0
) -> Response:
    with request.app.state.db.read() as conn:
        dataset = get_dataset(conn, view.project_id, name, version)
        items = list_items(conn, dataset, max(0, min(after, 2**31 - 1)), 50)
    shown = [
        {
            **item,
            "inputText": _short(item["input"]),
            "expectedText": _short(item["expectedOutput"]) if item["expectedOutput"] is not None else None,
        }
        for item in items
    ]
    return page(
        request,
        "dataset.html",
        view=view,
        title=dataset.name,
        dataset=dataset,
        items=shown,
        next_after=items[-1]["id"] if len(items) == 50 else None,
        formats=EXPORT_FORMATS,
    )


def _short(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@router.get("/datasets/{name}/download", include_in_schema=False)
def download(
    name: str, request: Request, view: ViewDep, format: str = "openai-chat", version: int | None = None
) -> Response:
    with request.app.state.db.read() as conn:
        dataset = get_dataset(conn, view.project_id, name, version)
    chunks = export_items(request.app.state.db, dataset, format)

    def stream() -> Iterator[bytes]:
        yield from chunks

    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:60]
    extension = "csv" if format == "csv" else "jsonl"
    return StreamingResponse(
        stream(),
        media_type="text/csv" if format == "csv" else "application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="{safe}-v{dataset.version}.{extension}"'},
    )


# experiments


def _experiments_page(request: Request, view: View, status_code: int = 200, **context: Any) -> Response:
    experiments, datasets, prompts, evaluators = [], [], [], []
    if view.project is not None:
        with request.app.state.db.read() as conn:
            experiments = list_experiments(conn, view.project_id)
            datasets = list_datasets(conn, view.project_id)
            prompts = [p for p in list_prompts(conn, view.project_id) if p.latest is not None]
            evaluators = list_evaluators(conn, view.project_id)
    return page(
        request,
        "experiments.html",
        status_code=status_code,
        view=view,
        title="Experiments",
        experiments=experiments,
        datasets=datasets,
        prompts=prompts,
        evaluators=evaluators,
        **context,
    )


@router.get("/experiments", include_in_schema=False)
def experiments_page(request: Request, view: ViewDep) -> Response:
    return _experiments_page(request, view)


@router.post("/experiments/_new", include_in_schema=False)
async def new_experiment(request: Request, view: AdminDep, form: FormDep) -> Response:
    dataset_name = str(form.get("dataset") or "")
    target: dict[str, Any] = {"prompt": str(form.get("prompt") or "")}
    if str(form.get("version") or "").isdigit():
        target["version"] = int(str(form.get("version")))
    if form.get("model"):
        target["model"] = str(form.get("model"))
    chosen = [int(str(v)) for v in form.getlist("evaluators") if str(v).isdigit()]
    try:
        with request.app.state.db.read() as conn:
            dataset = get_dataset(conn, view.project_id, dataset_name)
            checked = check_target(conn, view.project_id, target)
            ids = [get_evaluator(conn, view.project_id, i).id for i in chosen]
    except SightlineError as error:
        return _experiments_page(request, view, error.status_code, error=error.message)
    now = _now()
    settings = request.app.state.settings
    job = Enqueue(
        EXPERIMENT_KIND,
        {"environment": view.environment or "default"},
        now,
        settings.job_max_attempts,
        view.project_id,
    )
    name = f"{checked['prompt']} v{checked['version']} on {dataset.name} v{dataset.version}"
    op = CreateExperiment(view.project_id, name, dataset.id, dataset.version, checked, ids, job, now)
    experiment_id, _ = await request.app.state.db.writer.write(op)
    request.app.state.jobs.wake()
    return redirect(request, url_with(f"/experiments/{experiment_id}", view.scope))


@router.get("/experiments/{experiment_id:int}", include_in_schema=False)
def experiment_page(experiment_id: int, request: Request, view: ViewDep) -> Response:
    with request.app.state.db.read() as conn:
        experiment = get_experiment(conn, view.project_id, experiment_id)
        results = experiment_results(conn, experiment)
        others = [
            e
            for e in list_experiments(conn, view.project_id)
            if e.dataset_id == experiment.dataset_id and e.id != experiment.id
        ]
    for r in results:
        r["outputText"] = _short(r["output"]) if r["output"] is not None else ""
        r["inputText"] = _short(r["input"])
    return page(
        request,
        "experiment.html",
        view=view,
        title=experiment.name,
        experiment=experiment,
        summary=summary(results),
        results=results,
        others=others,
    )


@router.get("/experiments/compare", include_in_schema=False)
def compare_page(request: Request, view: ViewDep, a: int, b: int) -> Response:
    with request.app.state.db.read() as conn:
        compared = compare(conn, view.project_id, a, b)
    names = sorted(set(compared["a"]["summary"]["scores"]) | set(compared["b"]["summary"]["scores"]))
    for item in compared["items"]:
        item["inputText"] = _short(item["input"])
        item["expectedText"] = _short(item["expectedOutput"]) if item["expectedOutput"] is not None else ""
        for side in ("a", "b"):
            result = item[side] or {}
            item[f"{side}Text"] = (
                _short(result.get("output"))
                if result.get("output") is not None
                else (result.get("error") or "")
            )
    return page(request, "compare.html", view=view, title="Compare experiments", c=compared, names=names)
