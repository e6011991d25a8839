"""Evaluators: define (versioned), attach to new generations (a filter and a sampling rate), look at
what they gave, run over past generations (a backfill job), estimate what a judge would cost."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request

from ...errors import InvalidInput
from ...evals.evaluator import check_definition, check_filter, check_rate
from ...evals.jobs import BACKFILL_KIND
from ...store.evals import score_wire
from ...store.evals.evaluators import (
    SaveEvaluator,
    UpdateAttachment,
    estimate,
    evaluator_stats,
    get_evaluator,
    list_evaluators,
    recent_results,
)
from ..auth import ApiKeyDep, actor
from ..body import read_json
from ..responses import JSON

router = APIRouter(tags=["evaluators"])

_DAY_US = 86_400_000_000


@router.post("/api/evaluators", status_code=201, summary="Define an evaluator, or save a new version of one")
async def save(request: Request, key: ApiKeyDep) -> JSON:
    """Body: ``name``, ``type`` (json_valid, json_schema, regex, contains, length, threshold, equals,
    llm_judge, function), ``config``, and to evaluate new generations online ``filter`` (MongoDB-style)
    and ``sampleRate`` (0-1, default 1); ``scoreName`` (default: the name), ``enabled``. 201 ``{"id",
    "version"}`` for a new evaluator or version; 200 when the definition is unchanged."""
    body = await read_json(request)
    definition = await request.app.state.db.read_in_thread(
        lambda conn: check_definition(conn, key.project_id, body)
    )
    saved = await request.app.state.db.writer.write(
        SaveEvaluator(
            key.project_id,
            definition.name,
            definition.type,
            definition.config,
            definition.score_name,
            definition.filter,
            definition.sample_rate,
            definition.enabled,
            actor(request, key),
            time.time_ns() // 1000,
        )
    )
    return JSON(
        {"id": saved.id, "version": saved.version, "created": saved.created},
        status_code=201 if saved.changed else 200,
    )


@router.get("/api/evaluators", summary="The project's evaluators, with what they gave in the last day")
async def list_(request: Request, key: ApiKeyDep) -> JSON:
    since = time.time_ns() // 1000 - _DAY_US

    def read(conn: Any) -> list[dict[str, Any]]:
        return [
            {**ev.wire(), "lastDay": evaluator_stats(conn, key.project_id, ev.id, since)}
            for ev in list_evaluators(conn, key.project_id)
        ]

    return JSON({"data": await request.app.state.db.read_in_thread(read)})


@router.get("/api/evaluators/{ref}", summary="One evaluator: definition, last day's results, recent scores")
async def get(ref: str, request: Request, key: ApiKeyDep) -> JSON:
    since = time.time_ns() // 1000 - _DAY_US

    def read(conn: Any) -> dict[str, Any]:
        ev = get_evaluator(conn, key.project_id, ref)
        recent = [score_wire(r) for r in recent_results(conn, key.project_id, ev.id)]
        return {**ev.wire(), "lastDay": evaluator_stats(conn, key.project_id, ev.id, since), "recent": recent}

    return JSON(await request.app.state.db.read_in_thread(read))


@router.patch("/api/evaluators/{ref}", summary="Change what an evaluator evaluates online")
async def attach(ref: str, request: Request, key: ApiKeyDep) -> JSON:
    """Body: any of ``filter`` (null: evaluate nothing online), ``sampleRate``, ``enabled``."""
    body = await read_json(request)
    for name in sorted(set(body) - {"filter", "sampleRate", "enabled"}):
        raise InvalidInput(f"{name}: only filter, sampleRate and enabled change here", field=name)
    flt = check_filter(body.get("filter"))
    rate = check_rate(body["sampleRate"]) if "sampleRate" in body else None
    enabled = body.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise InvalidInput("enabled: expected true or false", field="enabled")
    ev = await request.app.state.db.read_in_thread(lambda conn: get_evaluator(conn, key.project_id, ref))
    op = UpdateAttachment(
        key.project_id,
        ev.id,
        flt,
        "filter" in body and flt is None,
        rate,
        enabled,
        actor(request, key),
        time.time_ns() // 1000,
    )
    await request.app.state.db.writer.write(op)
    return JSON(
        (
            await request.app.state.db.read_in_thread(lambda conn: get_evaluator(conn, key.project_id, ev.id))
        ).wire()
    )


def _judge_model(ev: Any) -> str | None:
    return ev.config.get("model") if ev.type == "llm_judge" else None


@router.post("/api/evaluators/{ref}/estimate", summary="How many generations a backfill takes, and its cost")
async def estimate_run(ref: str, request: Request, key: ApiKeyDep) -> JSON:
    """Body: ``{"filter": {...}}``. ``{"generations", "estimatedCost"}`` (for an LLM judge)."""
    body = await read_json(request)
    flt = check_filter(body.get("filter") or {})

    def read(conn: Any) -> dict[str, Any]:
        ev = get_evaluator(conn, key.project_id, ref)
        return estimate(conn, key.project_id, flt, _judge_model(ev))

    return JSON(await request.app.state.db.read_in_thread(read))


@router.post("/api/evaluators/{ref}/run", status_code=202, summary="Run an evaluator over past generations")
async def run(ref: str, request: Request, key: ApiKeyDep) -> JSON:
    """Body: ``{"filter": {...}}``. 202 ``{"jobId"}``: follow it at ``GET /api/jobs/{id}`` (``status``,
    ``done``, ``total``, ``errors``)."""
    body = await read_json(request)
    for name in sorted(set(body) - {"filter"}):
        raise InvalidInput(f"{name}: a run takes only a filter", field=name)
    flt = check_filter(body.get("filter") or {})
    ev = await request.app.state.db.read_in_thread(lambda conn: get_evaluator(conn, key.project_id, ref))
    job_id = await request.app.state.jobs.enqueue(
        BACKFILL_KIND, {"evaluatorId": ev.id, "filter": flt}, project_id=key.project_id
    )
    return JSON({"jobId": job_id, "evaluatorId": ev.id, "version": ev.version}, status_code=202)
