"""Generations: the filtered table (filters live in the address), one generation, and feedback on it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...errors import InvalidInput, QueryTimeout
from ...schema import Feedback
from ...store.evals import score_history
from ...store.generations.analytics import distinct_models, list_feedback, prompt_names
from ...store.generations.ingest import AddFeedback
from ...store.generations.queries import get_generation, list_rows
from ...store.generations.records import Scope
from ...store.generations.totals import count_generations, filter_totals
from ..errors import validation_message
from ..filters import GenerationFilter
from .context import FormDep, View, ViewDep
from .formatting import detail, feedback_summary, row
from .render import SECURITY_HEADERS, page, redirect, url_with
from .session import load_session
from .timerange import RANGES, input_value, now_us

router = APIRouter()

_SCOPE_PARAMS = ("project", "environment")


@dataclass
class Filters:
    """A generations query read from the address, and what the filter form shows again."""

    filter: GenerationFilter = field(default_factory=GenerationFilter)
    limit: int = 50
    cursor: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    range: str = ""
    meta: list[str] = field(default_factory=list)
    score: list[str] = field(default_factory=list)

    def form(self, name: str) -> str:
        return self.params.get(name, "")


def parse_filters(query: list[tuple[str, str]], environment: str | None, now: int) -> Filters:
    """Filters from the address: the API's filter parameters, plus ``range=24h`` and ``meta=key=value``."""
    rest: list[tuple[str, str]] = []
    relative = ""
    for name, raw in query:
        value = raw.strip()
        if name in _SCOPE_PARAMS:
            continue
        if name == "range":
            relative = value
        elif name == "meta":
            if not value:
                continue
            key, sep, wanted = value.partition("=")
            if not sep or not key.strip():
                raise InvalidInput(f"metadata filter {value!r}: write it as key=value", field="meta")
            rest.append((f"metadata.{key.strip()}", wanted.strip()))
        elif name == "score":
            if value:
                rest.append(_score_param(value))
        else:
            rest.append((name, value))
    if relative in ("", "custom"):
        relative = ""
    elif relative in RANGES:
        rest = [(name, value) for name, value in rest if name not in ("from", "to")]
    else:
        raise InvalidInput(f"range: expected one of {', '.join(RANGES)}; got {relative!r}", field="range")
    f, limit, cursor = GenerationFilter.from_params(rest)
    params = f.as_params()
    params.pop("environment", None)
    if relative:
        f.from_us = now - RANGES[relative][1]
        params["range"] = relative
    elif f.from_us is not None or f.to_us is not None:
        params["range"] = "custom"
    if f.from_us is not None and not relative:
        params["from"] = input_value(f.from_us)
    if f.to_us is not None:
        params["to"] = input_value(f.to_us)
    if limit != 50:
        params["limit"] = str(limit)
    f.environment = environment
    meta = [f"{k}={v}" for k, v in f.metadata.items()]
    score = [_score_text(name, value) for name, value in f.score_params.items()]
    return Filters(f, limit, cursor, params, relative, meta, score)


_SCORE_FORM = re.compile(r"\s*([^<>=\s]+)\s*(>=|<=|=)\s*(.+?)\s*")


def _score_param(text: str) -> tuple[str, str]:
    """``helpfulness>=0.8``, ``helpfulness<=0.5`` or ``correct=pass`` as a list filter parameter."""
    found = _SCORE_FORM.fullmatch(text)
    if found is None:
        raise InvalidInput(
            f"score filter {text!r}: write it as name=value, name>=number or name<=number", field="score"
        )
    name, op, value = found.groups()
    return f"scores.{name}" + {"=": "", ">=": ".min", "<=": ".max"}[op], value


def _score_text(param: str, value: str) -> str:
    rest = param[len("scores.") :]
    for suffix, op in ((".min", ">="), (".max", "<=")):
        if rest.endswith(suffix):
            return f"{rest[: -len(suffix)]}{op}{value}"
    return f"{rest}={value}"


def _choices(request: Request, project_id: int) -> tuple[list[str], list[str]]:
    with request.app.state.db.read() as conn:
        return distinct_models(conn, project_id), prompt_names(conn, project_id)


@router.get("/generations", include_in_schema=False)
def generations_page(request: Request, view: ViewDep) -> Response:
    if view.project is None:
        return page(request, "empty.html", view=view, title="Generations")
    error = None
    try:
        filters = parse_filters(request.query_params.multi_items(), view.environment, now_us())
    except InvalidInput as exc:  # show the form as it was sent, with what is wrong
        q = request.query_params
        sent = {k: v for k, v in q.items() if k not in (*_SCOPE_PARAMS, "meta", "score", "cursor")}
        filters = Filters(params=sent, meta=q.getlist("meta"), score=q.getlist("score"))
        error = exc.message
    rows: list[Any] = []
    next_url, totals, of = None, None, 0
    if error is None:
        with request.app.state.db.read() as conn:
            try:
                wanted = filters.filter.to_mongo()
                result = list_rows(conn, view.project_id, wanted, filters.limit, filters.cursor)
            except InvalidInput as exc:
                error, result = exc.message, None
        if result is not None:
            # A read of its own, and the list without it when it runs past the time budget.
            try:
                with request.app.state.db.read() as conn:
                    totals = filter_totals(conn, view.project_id, wanted)
                    of = count_generations(conn, view.project_id, view.environment)
            except QueryTimeout:
                totals = None
            rows = [row(g) for g in result.data]
            if result.next_cursor:
                next_url = url_with("/generations", _link_params(view, filters), cursor=result.next_cursor)
    models, templates = _choices(request, view.project_id)
    return page(
        request,
        "generations.html",
        status_code=400 if error else 200,
        view=view,
        title="Generations",
        rows=rows,
        filters=filters,
        link_params=_link_params(view, filters),
        next_url=next_url,
        totals=totals,
        of=of,
        models=models,
        templates=templates,
        ranges=RANGES,
        error=error,
    )


def _link_params(view: View, filters: Filters) -> dict[str, str]:
    return {**view.scope, **filters.params}


@router.get("/generations/{generation_id}/json", include_in_schema=False)
def generation_json(generation_id: str, request: Request, view: ViewDep, download: bool = False) -> Response:
    """The whole record as JSON (as ``GET /api/generations/{id}`` answers it), to read or to download."""
    with request.app.state.db.read() as conn:
        gen = get_generation(conn, view.project_id, generation_id)
    headers = {**SECURITY_HEADERS, "Content-Type": "application/json"}
    if download:
        name = re.sub(r"[^A-Za-z0-9._-]", "_", generation_id)[:100] or "generation"
        headers["Content-Disposition"] = f'attachment; filename="{name}.json"'
    return Response(orjson.dumps(gen, option=orjson.OPT_INDENT_2), headers=headers)


@router.get("/generations/{generation_id}", include_in_schema=False)
def generation_page(generation_id: str, request: Request, view: ViewDep) -> Response:
    with request.app.state.db.read() as conn:
        gen = get_generation(conn, view.project_id, generation_id)
        history = list_feedback(conn, view.project_id, generation_id)
        scores = score_history(conn, view.project_id, generation_id=gen["id"])
    shown = detail(gen)
    return page(
        request,
        "generation.html",
        view=view,
        title=f"{shown.row.model} · {shown.row.timestamp[:19].replace('T', ' ')}",
        g=shown,
        history=[(fb, feedback_summary(fb)) for fb in reversed(history)],
        scores=list(reversed(scores)),
    )


def _feedback_body(form: Any, username: str) -> dict[str, Any]:
    body: dict[str, Any] = {"userId": username}
    rating = str(form.get("rating") or "").strip()
    if rating:
        if not rating.isdigit():
            raise InvalidInput("rating: pick 1 to 5 stars", field="rating")
        body["rating"] = int(rating)
    for name in ("thumbs", "comment", "betterResponse"):
        value = str(form.get(name) or "").strip()
        if value:
            body[name] = value
    return body


@router.post("/generations/{generation_id}/feedback", include_in_schema=False)
async def add_feedback(generation_id: str, request: Request, view: ViewDep, form: FormDep) -> Response:
    """Feedback from the dashboard, given under the dashboard user's name."""
    session = load_session(request)
    target = url_with(f"/generations/{quote(generation_id, safe='')}", view.scope) + "#feedback"

    def generation() -> dict[str, Any]:
        with request.app.state.db.read() as conn:
            return get_generation(conn, view.project_id, generation_id)

    gen = await run_in_threadpool(generation)
    try:
        feedback = Feedback.model_validate(_feedback_body(form, view.user.username))
    except InvalidInput as exc:
        session.say("error", exc.message)
        return redirect(request, target)
    except ValidationError as exc:
        message = validation_message(exc)[0]
        session.say(
            "error",
            "Give a rating, thumbs, a comment or a better response."
            if "at least one" in message
            else message,
        )
        return redirect(request, target)
    scope = Scope(view.project_id, str(gen.get("environment") or ""))
    await request.app.state.db.writer.write(AddFeedback(scope, gen["id"], feedback))
    session.say("ok", "Feedback saved.")
    return redirect(request, target)
