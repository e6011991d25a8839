"""Runs (filtered by user id and pipeline), one run with its steps on a timeline, and chats."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import Response

from ...errors import InvalidInput
from ...store.generations.analytics import recent_chats
from ...store.generations.queries import list_generations
from ...store.generations.records import to_us
from ...store.generations.runs import get_run, list_runs
from ..filters import MAX_LIMIT
from .context import ViewDep
from .formatting import Block, Message, blocks, feedback_summary, messages, metadata_items, row
from .render import page, redirect, url_with

router = APIRouter()


@router.get("/runs", include_in_schema=False)
def runs_page(request: Request, view: ViewDep) -> Response:
    if view.project is None:
        return page(request, "empty.html", view=view, title="Runs")
    q = request.query_params
    user_id = (q.get("userId") or "").strip() or None
    slug = (q.get("pipelineSlug") or "").strip() or None
    status = (q.get("status") or "").strip() or None
    cursor = (q.get("cursor") or "").strip() or None
    params = {k: v for k, v in (("userId", user_id), ("pipelineSlug", slug), ("status", status)) if v}
    error, runs, next_url = None, [], None
    if status not in (None, "running", "ok", "error"):
        error = f"status: expected running, ok or error; got {status!r}"
    else:
        try:
            with request.app.state.db.read() as conn:
                result = list_runs(
                    conn, view.project_id, user_id=user_id, pipeline_slug=slug, status=status, cursor=cursor
                )
            runs = result.data
            if result.next_cursor:
                next_url = url_with("/runs", {**view.scope, **params}, cursor=result.next_cursor)
        except InvalidInput as exc:
            error = exc.message
    return page(
        request,
        "runs.html",
        status_code=400 if error else 200,
        view=view,
        title="Runs",
        runs=runs,
        params=params,
        link_params={**view.scope, **params},
        next_url=next_url,
        first_url=url_with("/runs", {**view.scope, **params}) if cursor else None,
        error=error,
    )


@dataclass(frozen=True, slots=True)
class Step:
    """A step of a run placed on the run's timeline (offsets and bar in percent of the run)."""

    index: int | None
    kind: str
    name: str
    status: str
    offset_ms: float | None
    duration_ms: float | None
    left: float
    width: float
    generation_id: str | None
    tokens: int | None
    cost: float | None
    summary: list[Block]
    error: str | None


def _us(value: Any) -> int | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return to_us(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


def _steps(run: dict[str, Any]) -> tuple[list[Step], float]:
    timed: list[tuple[dict[str, Any], int | None, int | None]] = []
    for step in run.get("steps") or []:
        if step.get("kind") == "generation":
            start = _us(step.get("timestamp"))
            latency = (step.get("performance") or {}).get("latency")
            end = start + int(latency * 1000) if start is not None and latency is not None else None
        else:
            start, end = _us(step.get("startedAt")), _us(step.get("endedAt"))
        timed.append((step, start, end))
    run_start, run_end = _us(run.get("startedAt")), _us(run.get("endedAt"))
    starts = [s for _, s, _ in timed if s is not None] + ([run_start] if run_start is not None else [])
    ends = [e for _, _, e in timed if e is not None] + [s for _, s, _ in timed if s is not None]
    if run_end is not None:
        ends.append(run_end)
    origin = min(starts) if starts else 0
    span = max((max(ends) if ends else origin) - origin, 1000)
    out = []
    for step, start, end in timed:
        offset = (start - origin) / 1000 if start is not None else None
        duration = (end - start) / 1000 if start is not None and end is not None else None
        left = (start - origin) / span * 100 if start is not None else 0.0
        width = max((end - start) / span * 100, 0.6) if start is not None and end is not None else 0.6
        if step.get("kind") == "generation":
            r = row(step)
            name = r.model + (f" · {r.template}" if r.template else "")
            out.append(
                Step(
                    step.get("stepIndex"),
                    "model call",
                    name,
                    r.status,
                    offset,
                    duration,
                    left,
                    min(width, 100 - left),
                    r.id,
                    r.total_tokens,
                    r.cost,
                    blocks(r.preview),
                    r.error,
                )
            )
        else:
            summary = blocks(step.get("outputs")) if step.get("outputs") is not None else []
            err = step.get("error") or {}
            out.append(
                Step(
                    step.get("stepIndex"),
                    "step",
                    str(step.get("name", "step")),
                    step.get("status", "ok"),
                    offset,
                    duration,
                    left,
                    min(width, 100 - left),
                    None,
                    None,
                    None,
                    summary,
                    err.get("message") if err else None,
                )
            )
    return out, span / 1000


@router.get("/runs/{run_id:path}", include_in_schema=False)
def run_page(run_id: str, request: Request, view: ViewDep) -> Response:
    with request.app.state.db.read() as conn:
        run = get_run(conn, view.project_id, run_id)
    steps, span_ms = _steps(run)
    cost = sum(s.cost for s in steps if s.cost is not None)
    tokens = sum(s.tokens for s in steps if s.tokens is not None)
    return page(
        request,
        "run.html",
        view=view,
        title=f"Run {run['pipelineSlug'] or run['id']}",
        run=run,
        steps=steps,
        span_ms=span_ms,
        cost=cost,
        tokens=tokens,
        metadata=metadata_items(run.get("metadata") or {}),
    )


@router.get("/chats", include_in_schema=False)
def chats_page(request: Request, view: ViewDep) -> Response:
    if view.project is None:
        return page(request, "empty.html", view=view, title="Chats")
    wanted = (request.query_params.get("chatId") or "").strip()
    if wanted:
        return redirect(request, url_with(f"/chats/{quote(wanted, safe='')}", view.scope), status_code=302)
    with request.app.state.db.read() as conn:
        chats = recent_chats(conn, view.project_id, view.environment)
    return page(request, "chats.html", view=view, title="Chats", chats=chats)


@dataclass
class Turn:
    """One generation of a chat: what was asked (the newest user message) and the answer."""

    row: Any
    asked: list[Message]
    answer: list[Block]
    feedback: str


def _turn(gen: dict[str, Any]) -> Turn:
    said = messages((gen.get("input") or {}).get("content"))
    users = [m for m in said if m.role in ("user", "prompt")]
    output = gen.get("output") or {}
    return Turn(
        row(gen),
        users[-1:] or said[-1:],
        blocks(output.get("content"), output.get("type", "text")),
        feedback_summary(gen.get("feedback")),
    )


@router.get("/chats/{chat_id:path}", include_in_schema=False)
def chat_page(chat_id: str, request: Request, view: ViewDep) -> Response:
    with request.app.state.db.read() as conn:
        result = list_generations(conn, view.project_id, {"chatId": chat_id}, MAX_LIMIT)
    gens = list(reversed(result.data))
    system = (
        [m for m in messages((gens[0].get("input") or {}).get("content")) if m.role == "system"][:1]
        if gens
        else []
    )
    return page(
        request,
        "chat.html",
        view=view,
        title=f"Chat {chat_id}",
        chat_id=chat_id,
        system=system,
        turns=[_turn(g) for g in gens],
        truncated=result.next_cursor is not None,
    )
