"""Reading generations: list with filters, one by id, MongoDB-style query and aggregate."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from ...errors import InvalidInput
from ...store import mongo
from ...store.generations.reads.queries import get_generation, list_generations, to_wire
from ...store.generations.reads.totals import count_generations, filter_totals
from ..auth import ApiKeyDep
from ..body import read_json
from ..filters import GenerationFilter
from ..responses import JSON

router = APIRouter(tags=["generations"])


@router.get("/api/generations", summary="List generations, newest first")
def list_(request: Request, key: ApiKeyDep) -> JSON:
    """Filters: ``model.id``, ``output.type``, ``userId`` (or ``metadata.userId``), ``runId``, ``chatId``,
    ``template.name``, ``status``, ``cacheHit``, ``environment``, ``feedback`` (true/false),
    ``feedback.rating``, ``feedback.minRating``, ``feedback.thumbs``, ``from``/``to`` (ISO 8601),
    ``metadata.<key>=value``, ``q`` (free-text search of prompts, outputs, template names and
    metadata values: words ANDed, ``"a phrase"``, ``prefix*``); ``limit`` (1-1000, default 50) and
    ``cursor`` (the previous ``nextCursor``)."""
    f, limit, cursor = GenerationFilter.from_params(request.query_params.multi_items())
    with request.app.state.db.read() as conn:
        page = list_generations(conn, key.project_id, f.to_mongo(), limit, cursor)
    return JSON({"data": page.data, "nextCursor": page.next_cursor})


# ``:path``: a generation's id is the client's text, and may hold a "/" (sent as %2F).
@router.get("/api/generations/{generation_id:path}", summary="One generation")
def get(generation_id: str, request: Request, key: ApiKeyDep) -> JSON:
    with request.app.state.db.read() as conn:
        return JSON(get_generation(conn, key.project_id, generation_id))


def _limit(value: Any, default: int = 100, high: int = 1000) -> int:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
        raise InvalidInput(f"limit: expected a whole number from 1 to {high}", field="limit")
    return value


@router.post("/api/generations/query", summary="Find generations with a MongoDB-style filter")
async def query(request: Request, key: ApiKeyDep) -> JSON:
    """Body: ``{"filter": {...}, "sort": {"timestamp": -1}, "limit": 100, "skip": 0}``."""
    body = await read_json(request)
    unknown = set(body) - {"filter", "sort", "limit", "skip"}
    if unknown:
        raise InvalidInput(
            f"unknown field {sorted(unknown)[0]!r}; expected filter, sort, limit, skip",
            field=sorted(unknown)[0],
        )
    flt, sort = body.get("filter") or {}, body.get("sort")
    limit, skip = _limit(body.get("limit")), body.get("skip", 0)
    # Both databases bind 64-bit integers at most: a larger skip is a 400 here, not an overflow there.
    if not isinstance(skip, int) or isinstance(skip, bool) or not 0 <= skip < 2**63:
        raise InvalidInput(f"skip: expected a whole number from 0 to {2**63 - 1}", field="skip")

    def run() -> list[dict[str, Any]]:
        with request.app.state.db.read() as conn:
            rows = mongo.find(conn, key.project_id, flt, sort=sort, limit=limit, skip=skip)
            return to_wire(conn, key.project_id, rows)

    return JSON({"data": await run_in_threadpool(run)})


@router.post("/api/generations/totals", summary="What the generations a filter matches add up to")
async def totals(request: Request, key: ApiKeyDep) -> JSON:
    """Body: ``{"filter": {...}}`` (MongoDB-style, as in query). Answers ``matched``, ``of`` (the
    project's generations), ``cost`` (USD), ``tokens`` and ``latency`` ``{"p50", "p95"}`` in ms (cache
    hits left out; within half a histogram bin)."""
    body = await read_json(request)
    unknown = set(body) - {"filter"}
    if unknown:
        raise InvalidInput(f"unknown field {sorted(unknown)[0]!r}; expected filter", field=sorted(unknown)[0])
    flt = body.get("filter")
    if flt is None:
        flt = {}
    if not isinstance(flt, dict):
        raise InvalidInput("filter: expected an object", field="filter")

    def run(conn: Any) -> dict[str, Any]:
        found = filter_totals(conn, key.project_id, flt)
        return {**found.wire(), "of": count_generations(conn, key.project_id)}

    return JSON(await request.app.state.db.read_in_thread(run))


@router.post("/api/generations/aggregate", summary="Aggregate generations with a MongoDB-style pipeline")
async def aggregate(request: Request, key: ApiKeyDep) -> JSON:
    """Body: ``{"pipeline": [{"$match": ...}, {"$group": ...}, {"$sort": ...}, {"$limit": n}]}``."""
    body = await read_json(request)
    pipeline = body.get("pipeline")
    if not isinstance(pipeline, list):
        raise InvalidInput("pipeline: expected a list of stages", field="pipeline")

    def run() -> list[dict[str, Any]]:
        with request.app.state.db.read() as conn:
            return mongo.aggregate(conn, key.project_id, pipeline)

    return JSON({"data": await run_in_threadpool(run)})
