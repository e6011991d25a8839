"""Runs (filtered by user id, pipeline and status, with their totals), one run as a tree and a waterfall of
its steps, and chats with theirs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import Response

from ....errors import InvalidInput, QueryTimeout
from ....store.generations.reads.analytics import recent_chats
from ....store.generations.reads.chats import chat_totals
from ....store.generations.reads.queries import list_generations
from ....store.generations.reads.runs import get_run, list_runs, run_totals
from ...filters import MAX_LIMIT
from ..core.context import ViewDep
from ..core.formatting import (
    Block,
    Message,
    blocks,
    feedback_summary,
    messages,
    metadata_items,
    row,
    score_text,
)
from ..core.render import page, redirect, url_with
from .run_tree import build_tree, node_input, node_output
from .views import list_tools

router = APIRouter()


PAGE_SIZES = (25, 50, 100, 200)
_PAGE = 50


@dataclass(frozen=True, slots=True)
class RunRow:
    """One line of the runs table: the run and its scores as cells show them."""

    run: dict[str, Any]
    scores: list[tuple[str, str]]


@router.get("/runs", include_in_schema=False)
def runs_page(request: Request, view: ViewDep) -> Response:
    if view.project is None:
        return page(request, "empty.html", view=view, title="Runs")
    q = request.query_params
    user_id = (q.get("userId") or "").strip() or None
    slug = (q.get("pipelineSlug") or "").strip() or None
    status = (q.get("status") or "").strip() or None
    search = (q.get("q") or "").strip() or None
    cursor = (q.get("cursor") or "").strip() or None
    before = None if cursor else (q.get("before") or "").strip() or None
    limit_text = (q.get("limit") or "").strip()
    params = {
        k: v
        for k, v in (
            ("q", search),
            ("userId", user_id),
            ("pipelineSlug", slug),
            ("status", status),
            ("limit", limit_text if limit_text != str(_PAGE) else ""),
        )
        if v
    }
    error, runs, next_url, prev_url, totals = None, [], None, None, None
    limit = int(limit_text) if limit_text.isdigit() else _PAGE
    if status not in (None, "running", "ok", "error"):
        error = f"status: expected running, ok or error; got {status!r}"
    elif limit_text and limit not in PAGE_SIZES:
        error = f"limit: expected one of {', '.join(map(str, PAGE_SIZES))}; got {limit_text!r}"
    else:
        wanted: dict[str, Any] = {
            "user_id": user_id,
            "pipeline_slug": slug,
            "status": status,
            "q": search,
            "environment": view.environment,
        }
        try:
            with request.app.state.db.read() as conn:
                result = list_runs(conn, view.project_id, cursor=cursor, before=before, limit=limit, **wanted)
            runs = [
                RunRow(r, [(name, score_text(sc)) for name, sc in sorted((r.get("scores") or {}).items())])
                for r in result.data
            ]
            here = {**view.scope, **params}
            # Read backwards, the older rows follow (this page came from them) and newer ones may lead.
            older = result.first_cursor if before else result.next_cursor
            newer = result.next_cursor if before else (result.first_cursor if cursor else None)
            next_url = url_with("/runs", here, cursor=older) if older else None
            prev_url = url_with("/runs", here, before=newer) if newer else None
        except InvalidInput as exc:
            error = exc.message
        if error is None:
            # A read of its own, and the list without it when it runs past the time budget.
            try:
                with request.app.state.db.read() as conn:
                    totals = run_totals(conn, view.project_id, **wanted)
            except QueryTimeout:
                totals = None
    return page(
        request,
        "runs.html",
        status_code=400 if error else 200,
        view=view,
        title="Runs",
        runs=runs,
        totals=totals,
        params=params,
        link_params={**view.scope, **params},
        next_url=next_url,
        prev_url=prev_url,
        first_url=url_with("/runs", {**view.scope, **params}) if cursor or before else None,
        page_sizes=PAGE_SIZES,
        limit=limit,
        error=error,
        **list_tools(request, view, "runs"),
    )


@router.get("/runs/{run_id:path}", include_in_schema=False)
def run_page(run_id: str, request: Request, view: ViewDep) -> Response:
    """One run as a tree and a waterfall of its steps; ``?step=`` selects one (its details beside the
    tree), and ``&part=step`` answers with those details alone (what tree.js swaps in)."""
    with request.app.state.db.read() as conn:
        run = get_run(conn, view.project_id, run_id)
    tree = build_tree(run)
    wanted = (request.query_params.get("step") or "").strip()
    selected = tree.find(wanted) if wanted else None
    context: dict[str, Any] = {
        "view": view,
        "run": run,
        "tree": tree,
        "selected": selected,
        "missing_step": wanted if wanted and selected is None else None,
        "run_url": url_with("/runs/" + quote(run["id"], safe=""), view.scope),
    }
    if selected is not None:
        asked, given = node_input(selected)
        context.update(
            step_messages=asked,
            step_input=given,
            step_output=node_output(selected),
            step_metadata=metadata_items(selected.step.get("metadata") or {})
            if selected.generation_id
            else [],
        )
    # What the run was given and gave back: its first step's input, and its own output when it sent one.
    first = tree.roots[0] if tree.roots else None
    run_messages, run_input = node_input(first) if first is not None else ([], [])
    output = run.get("output")
    single = first if first is not None and len(tree.roots) == 1 else None  # a trace's root span
    context.update(
        run_input_from=first,
        run_messages=run_messages,
        run_input=run_input,
        run_output_from=None if output is not None else single,
        run_output=blocks(output) if output is not None else node_output(single) if single else [],
    )
    if request.query_params.get("part") == "step":
        return page(
            request, "_run_detail.html", status_code=404 if context["missing_step"] else 200, **context
        )
    return page(
        request,
        "run.html",
        title=f"Run {run['pipelineSlug'] or run['id']}",
        metadata=metadata_items(run.get("metadata") or {}),
        scores=[(name, score_text(sc), sc) for name, sc in sorted((run.get("scores") or {}).items())],
        **context,
    )


@router.get("/chats", include_in_schema=False)
def chats_page(request: Request, view: ViewDep) -> Response:
    if view.project is None:
        return page(request, "empty.html", view=view, title="Chats")
    wanted = (request.query_params.get("chatId") or "").strip()
    if wanted:
        return redirect(request, url_with(f"/chats/{quote(wanted, safe='')}", view.scope), status_code=302)
    search = (request.query_params.get("q") or "").strip() or None
    error, chats, totals = None, [], {}
    try:
        with request.app.state.db.read() as conn:
            chats = recent_chats(conn, view.project_id, view.environment, q=search)
            totals = chat_totals(conn, view.project_id, [c.chat_id for c in chats])
    except InvalidInput as exc:
        error = exc.message
    return page(
        request,
        "chats.html",
        status_code=400 if error else 200,
        view=view,
        title="Chats",
        chats=[(c, totals.get(c.chat_id)) for c in chats],
        chats_cost=sum(t.cost or 0.0 for t in totals.values()),
        chats_tokens=sum(t.tokens or 0 for t in totals.values()),
        search=search or "",
        error=error,
        **list_tools(request, view, "chats"),
    )


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
        totals = chat_totals(conn, view.project_id, [chat_id]).get(chat_id)
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
        totals=totals,
        truncated=result.next_cursor is not None,
    )
