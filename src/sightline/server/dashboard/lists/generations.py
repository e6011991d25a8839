"""Generations: the filtered table (filters live in the address), one generation, and feedback on it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import orjson
from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ....errors import InvalidInput, QueryTimeout
from ....schema import Feedback
from ....store.evals import score_history
from ....store.generations.ingest import AddFeedback
from ....store.generations.reads.analytics import distinct_models, list_feedback, prompt_names
from ....store.generations.reads.listing import column_values
from ....store.generations.reads.ordering import NEWEST, Ordering, parse_sort
from ....store.generations.reads.queries import encode_cursor, get_generation, list_rows
from ....store.generations.reads.totals import count_generations, filter_totals
from ....store.generations.records import Scope
from ....store.mongo.aggregate import aggregate
from ....store.mongo.fields import time_value
from ...errors import validation_message
from ...filters import GenerationFilter
from ..core.context import FormDep, View, ViewDep
from ..core.formatting import detail, feedback_summary, row
from ..core.render import SECURITY_HEADERS, page, redirect, url_with
from ..core.session import load_session
from ..core.timerange import RANGES, input_value, now_us
from . import columns as column_choice
from .columns import Column, available_columns, chosen_columns
from .views import list_tools

router = APIRouter()
router.include_router(column_choice.router)  # before /generations/{id}: its own address

_SCOPE_PARAMS = ("project", "environment")
# Where the list is, not what it holds: never a filter, never kept in the links that change the filter.
_PLACE_PARAMS = ("cursor", "before", "at", "open")
PAGE_SIZES = (25, 50, 100, 200)


def _knows_search() -> bool:
    try:
        GenerationFilter.from_params([("q", "word")])
        return True
    except InvalidInput:
        return False


# ``q`` (full-text search) joins the filter once the store can search; until then the box passes it on.
_SEARCH = _knows_search()


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
    order: Ordering = NEWEST
    before: str | None = None  # a page read backwards: the rows before this cursor's
    at: int = 0  # how many rows come before this page (for "51–100 of 214")

    def form(self, name: str) -> str:
        return self.params.get(name, "")


def parse_filters(query: list[tuple[str, str]], environment: str | None, now: int) -> Filters:
    """Filters from the address: the API's filter parameters, plus ``range=24h``, ``meta=key=value``,
    ``score=name>=x``, ``sort=-cost`` and the place in the list (``cursor``/``before``, ``at``)."""
    rest: list[tuple[str, str]] = []
    relative, sort, before, at, search = "", "", None, 0, ""
    for name, raw in query:
        value = raw.strip()
        if name in _SCOPE_PARAMS or name == "open":
            continue
        if name == "range":
            relative = value
        elif name == "sort":
            sort = value
        elif name == "before":
            before = value or None
        elif name == "at":
            at = int(value) if value.isdigit() and len(value) < 10 else 0
        elif name == "q" and not _SEARCH:
            search = value
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
    if relative in ("", "custom", "all"):  # "all" (the analytics page's): no time filter
        relative = ""
    elif relative in RANGES:
        rest = [(name, value) for name, value in rest if name not in ("from", "to")]
    else:
        raise InvalidInput(
            f"range: expected one of {', '.join(RANGES)} or all; got {relative!r}", field="range"
        )
    f, limit, cursor = GenerationFilter.from_params(rest)
    order = parse_sort(sort)
    params = f.as_params()
    params.pop("environment", None)
    if search:
        params["q"] = search
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
    if not order.is_default:
        params["sort"] = order.text
    f.environment = environment
    meta = [f"{k}={v}" for k, v in f.metadata.items()]
    score = [_score_text(name, value) for name, value in f.score_params.items()]
    return Filters(f, limit, cursor, params, relative, meta, score, order, before if not cursor else None, at)


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
        sent = {k: v for k, v in q.items() if k not in (*_SCOPE_PARAMS, *_PLACE_PARAMS, "meta", "score")}
        filters = Filters(params=sent, meta=q.getlist("meta"), score=q.getlist("score"))
        error = exc.message
    with request.app.state.db.read() as conn:
        columns = chosen_columns(conn, view.user.id, view.project_id)
        offered = available_columns(conn, view.project_id, columns)
    listing = _Listing()
    if error is None:
        try:
            listing = _read_page(request, view, filters, columns)
        except InvalidInput as exc:
            error = exc.message
    models, templates = _choices(request, view.project_id)
    link_params = _link_params(view, filters)
    return page(
        request,
        "generations.html",
        status_code=400 if error else 200,
        view=view,
        title="Generations",
        rows=listing.rows,
        cells=listing.cells,
        filters=filters,
        link_params=link_params,
        next_url=listing.next_url,
        prev_url=listing.prev_url,
        position=listing.position,
        totals=listing.totals,
        of=listing.of,
        columns=columns,
        offered=offered,
        chosen={c.key for c in columns},
        chips=chips(filters, link_params),
        page_sizes=PAGE_SIZES,
        sort_url=lambda key: _sort_url(link_params, filters.order, key),
        models=models,
        templates=templates,
        ranges=RANGES,
        list_url=str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""),
        error=error,
        **list_tools(request, view),
    )


@dataclass
class _Listing:
    rows: list[Any] = field(default_factory=list)
    cells: dict[str, dict[str, Any]] = field(default_factory=dict)
    next_url: str | None = None
    prev_url: str | None = None
    position: tuple[int, int] | None = None
    totals: Any = None
    of: int = 0


def _read_page(request: Request, view: View, filters: Filters, columns: list[Column]) -> _Listing:
    """One page of the list in the chosen order (forwards from ``cursor`` or backwards from ``before``),
    its links to the pages either side, what the chosen columns show, and the totals of the match."""
    out = _Listing()
    wanted = filters.filter.to_mongo()
    order, limit = filters.order, filters.limit
    keys = [c.metadata_key for c in columns if c.metadata_key]
    with request.app.state.db.read() as conn:
        if filters.before:
            back = list_rows(conn, view.project_id, wanted, limit, filters.before, order.reversed())
            data = list(reversed(back.data))
            more_before = back.next_cursor is not None
            before_first, after_last = back.next_cursor, back.first_cursor
            at = filters.at if more_before else 0
        else:
            result = list_rows(conn, view.project_id, wanted, limit, filters.cursor, order)
            data = result.data
            more_before = bool(filters.cursor)
            before_first, after_last = result.first_cursor, result.next_cursor
            at = filters.at if filters.cursor else 0
        ids = [g["id"] for g in data]
        values = column_values(conn, view.project_id, ids, keys) if ids else {}
    # A read of its own, and the list without it when it runs past the time budget.
    try:
        with request.app.state.db.read() as conn:
            out.totals = filter_totals(conn, view.project_id, wanted)
            out.of = count_generations(conn, view.project_id, view.environment)
    except QueryTimeout:
        out.totals = None
    out.rows = [row(g) for g in data]
    out.cells = {r.id: _cells(r, values.get(r.id, {})) for r in out.rows}
    params = _link_params(view, filters)
    if data:
        out.position = (at + 1, at + len(data))
        if after_last:
            out.next_url = url_with("/generations", params, cursor=after_last, at=str(at + len(data)))
        if more_before and before_first:
            out.prev_url = url_with("/generations", params, before=before_first, at=str(max(at - limit, 0)))
    return out


def _clip(text: str, size: int = 80) -> str:
    text = " ".join(text.split())
    return text[:size] + ("…" if len(text) > size else "")


def _cells(r: Any, values: dict[str, Any]) -> dict[str, Any]:
    """What the chosen columns show of one row besides its standard fields (text, escaped on output)."""
    out: dict[str, Any] = {"input": _clip(str(values.get("input") or "")), "output": _clip(r.preview)}
    for key, value in values.items():
        if key.startswith("metadata."):
            out[key] = _clip(str(value), 120)
    for name, text, wanted in r.scores:
        out[f"score.{name}"] = (text, wanted)
    return out


_CHIP_LABELS = {
    "q": "Search",
    "userId": "User",
    "model.id": "Model",
    "template.name": "Template",
    "status": "Status",
    "runId": "Run",
    "chatId": "Chat",
    "sessionId": "Session",
    "output.type": "Output",
    "cacheHit": "Cache hit",
    "feedback": "Feedback",
    "feedback.thumbs": "Thumbs",
    "feedback.rating": "Rating",
    "feedback.minRating": "Rating at least",
}


def chips(filters: Filters, link_params: dict[str, str]) -> list[tuple[str, str]]:
    """``(text, address without it)`` for each filter in use: a chip removes its filter when followed."""
    out: list[tuple[str, str]] = []
    params = filters.params
    for name, value in params.items():
        if name in ("limit", "sort", "from", "to"):
            continue
        without: dict[str, Any] = {name: None}
        if name == "range":
            without = {"range": None, "from": None, "to": None}
            label = RANGES[value][0] if value in RANGES else "Custom time"
            text = label if value in RANGES else _custom_time(params)
        elif name.startswith("metadata."):
            text = f"{name[len('metadata.') :]} = {value}"
        elif name.startswith("scores."):
            text = f"score {_score_text(name, value)}"
        else:
            text = f"{_CHIP_LABELS.get(name, name)}: {value}"
        link = {k: v for k, v in link_params.items() if k not in without}
        out.append((text, url_with("/generations", link)))
    return out


def _custom_time(params: dict[str, str]) -> str:
    start, end = params.get("from", ""), params.get("to", "")
    return f"Time: {start.replace('T', ' ') or '…'} to {end.replace('T', ' ') or 'now'}"


def _sort_url(link_params: dict[str, str], order: Ordering, key: str) -> str:
    """The address that sorts by ``key``: descending first, the other way when it already is."""
    descending = not (order.key == key and order.descending)
    wanted = Ordering(key, descending)
    return url_with("/generations", link_params, sort=None if wanted.is_default else wanted.text)


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
    list_query = _list_query(request)
    with request.app.state.db.read() as conn:
        gen = get_generation(conn, view.project_id, generation_id)
        history = list_feedback(conn, view.project_id, generation_id)
        scores = score_history(conn, view.project_id, generation_id=gen["id"])
        newer, older = _neighbours(conn, view, gen, list_query)
    shown = detail(gen)

    def link(target: str | None) -> str | None:
        if target is None:
            return None
        return url_with(f"/generations/{quote(target, safe='')}", view.scope, list=list_query or None)

    return page(
        request,
        "generation.html",
        view=view,
        title=f"{shown.row.model} · {shown.row.timestamp[:19].replace('T', ' ')}",
        g=shown,
        history=[(fb, feedback_summary(fb)) for fb in reversed(history)],
        scores=list(reversed(scores)),
        newer_url=link(newer),
        older_url=link(older),
        list_url=f"/generations?{list_query}" if list_query else url_with("/generations", view.scope),
    )


_LIST_QUERY_CHARS = 4000  # a list's address is short; a longer one is not a list's


def _list_query(request: Request) -> str:
    """The query of the generations list this page was opened from: ``list=`` in the address (the
    page's own previous/next links carry it), else the address of the list that linked here."""
    sent = request.query_params.get("list")
    if sent is None:
        referrer = urlsplit(request.headers.get("referer", ""))
        if referrer.netloc != request.url.netloc or referrer.path != "/generations":
            return ""
        sent = referrer.query
    # The cursor is where that page of the list started: the neighbours go on past it.
    kept = [(k, v) for k, v in parse_qsl(sent[:_LIST_QUERY_CHARS]) if k not in ("cursor", "open") and v]
    return urlencode(kept)


def _neighbours(conn: Any, view: View, gen: dict[str, Any], list_query: str) -> tuple[str | None, str | None]:
    """The ids of the generations just newer and just older than ``gen`` in the list it was opened from
    (the same filter through the same compiler, newest first), or in the project when there is none.
    A list whose address no longer parses has no neighbours."""
    try:
        filters = parse_filters(parse_qsl(list_query), view.environment, now_us())
        wanted = filters.filter.to_mongo()
        at = str(gen["timestamp"])
        cursor = encode_cursor(time_value("timestamp", at), gen["id"])
        older = list_rows(conn, view.project_id, wanted, 1, cursor)
        after = {"$or": [{"timestamp": {"$gt": at}}, {"timestamp": at, "id": {"$gt": gen["id"]}}]}
        newer = aggregate(
            conn,
            view.project_id,
            [{"$match": {"$and": [wanted, after]}}, {"$sort": {"timestamp": 1, "id": 1}}, {"$limit": 1}],
            max_results=1,
        )
    except (InvalidInput, QueryTimeout):
        return None, None
    return (newer[0]["id"] if newer else None), (older.data[0]["id"] if older.data else None)


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
