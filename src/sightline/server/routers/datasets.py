"""Datasets: made by hand, by upload (JSONL or CSV) or from a filter of generations; versioned;
exported as OpenAI fine-tuning chat JSONL, eval JSONL or CSV (streamed)."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from ...errors import InvalidInput, PayloadTooLarge
from ...evals.evaluator import check_filter
from ...store.evals.datasets import (
    EXPORT_FORMATS,
    AddItems,
    RemoveItems,
    check_item,
    export_items,
    get_dataset,
    items_from_generations,
    list_datasets,
    list_items,
)
from ...store.generations.reads.queries import list_generations
from ..auth import ApiKeyDep, actor
from ..body import read_json, read_raw
from ..responses import JSON

router = APIRouter(tags=["datasets"])

MAX_ITEMS = 10_000  # items one request may add
_SCAN_MAX = 100_000  # generations one "fromFilter" looks at, at most


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 200 or "\x00" in value:
        raise InvalidInput("name: expected 1 to 200 characters", field="name")
    return value.strip()


def _items(raw: Any, field: str = "items") -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise InvalidInput(f"{field}: expected a list of items", field=field)
    if len(raw) > MAX_ITEMS:
        raise PayloadTooLarge(f"{field}: at most {MAX_ITEMS} items per request", field=field)
    return [check_item(item, f"{field}[{i}]") for i, item in enumerate(raw)]


def from_generations(
    request: Request, project_id: int, flt: dict[str, Any], expected: str, limit: int
) -> list[dict[str, Any]]:
    """Items made of the generations ``flt`` matches, newest first, at most ``limit``."""
    items: list[dict[str, Any]] = []
    cursor, scanned = None, 0
    while len(items) < limit and scanned < _SCAN_MAX:
        with request.app.state.db.read() as conn:
            page = list_generations(conn, project_id, flt, 500, cursor)
        scanned += len(page.data)
        items.extend(items_from_generations(page.data, expected))
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    return items[:limit]


@router.post("/api/datasets", status_code=201, summary="Create a dataset, or add items to one")
async def create(request: Request, key: ApiKeyDep) -> JSON:
    """Body: ``name``, ``description``, ``items`` (``[{input, expectedOutput?, metadata?}]``) and/or
    ``fromFilter`` (MongoDB-style, over generations) with ``expected`` (``output``, the default, or
    ``betterResponse``: only generations whose user gave one) and ``limit`` (default 1000). Adding
    items makes a new version."""
    body = await read_json(request)
    for name in sorted(set(body) - {"name", "description", "items", "fromFilter", "expected", "limit"}):
        raise InvalidInput(f"{name}: unknown field of a dataset", field=name)
    dataset_name = _name(body.get("name"))
    description = body.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 5000):
        raise InvalidInput("description: expected a text of at most 5000 characters", field="description")
    items = _items(body["items"]) if body.get("items") is not None else []
    if body.get("fromFilter") is not None:
        flt = check_filter(body["fromFilter"], "fromFilter") or {}
        expected = body.get("expected", "output")
        if expected not in ("output", "betterResponse"):
            raise InvalidInput("expected: output or betterResponse", field="expected")
        limit = body.get("limit", 1000)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_ITEMS:
            raise InvalidInput(f"limit: a whole number from 1 to {MAX_ITEMS}", field="limit")
        items += await run_in_threadpool(from_generations, request, key.project_id, flt, expected, limit)
    op = AddItems(
        key.project_id, dataset_name, description, items, actor(request, key), time.time_ns() // 1000
    )
    dataset = await request.app.state.db.writer.write(op)
    return JSON({**dataset.wire(), "added": len(items)}, status_code=201)


def _parse_upload(raw: bytes, content_type: str) -> list[Any]:
    """Items from an uploaded JSON Lines or CSV text (columns input, expectedOutput, metadata)."""
    text = raw.decode("utf-8-sig", errors="strict")
    if "csv" in content_type:
        rows = list(csv.DictReader(io.StringIO(text)))
        out = []
        for i, row in enumerate(rows):
            item: dict[str, Any] = {"input": row.get("input")}
            expected = row.get("expectedOutput", row.get("expected_output"))
            if expected not in (None, ""):
                item["expectedOutput"] = expected
            if row.get("metadata"):
                try:
                    item["metadata"] = orjson.loads(row["metadata"])
                except orjson.JSONDecodeError:
                    raise InvalidInput(
                        f"items[{i}].metadata: not JSON", field=f"items[{i}].metadata"
                    ) from None
            out.append(item)
        return out
    out = []
    for i, line in enumerate(text.splitlines()):
        if line.strip():
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                raise InvalidInput(f"line {i + 1}: not JSON", field=f"items[{len(out)}]") from None
    return out


@router.post("/api/datasets/{name}/items", status_code=201, summary="Add items: JSON, JSON Lines or CSV")
async def add_items(name: str, request: Request, key: ApiKeyDep) -> JSON:
    """Body: ``{"items": [...]}``; or a JSON Lines file (``application/x-ndjson``, one item a line);
    or a CSV file (``text/csv``: columns ``input``, ``expectedOutput``, ``metadata`` as JSON)."""
    content_type = request.headers.get("content-type", "application/json").lower()
    if "json" in content_type and "ndjson" not in content_type and "jsonl" not in content_type:
        body = await read_json(request)
        raw_items = body.get("items")
    else:
        try:
            raw_items = _parse_upload(await read_raw(request), content_type)
        except UnicodeDecodeError:
            raise InvalidInput("the file is not UTF-8 text") from None
    items = _items(raw_items)
    if not items:
        raise InvalidInput("items: give at least one item", field="items")
    with request.app.state.db.read() as conn:
        get_dataset(conn, key.project_id, name)  # 404 for a dataset that does not exist
    op = AddItems(key.project_id, name, None, items, actor(request, key), time.time_ns() // 1000)
    dataset = await request.app.state.db.writer.write(op)
    return JSON({**dataset.wire(), "added": len(items)}, status_code=201)


@router.delete("/api/datasets/{name}/items", summary="Remove items (a new version)")
async def remove_items(name: str, request: Request, key: ApiKeyDep) -> JSON:
    body = await read_json(request)
    ids = body.get("ids")
    if (
        not isinstance(ids, list)
        or not ids
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
    ):
        raise InvalidInput("ids: expected a list of item ids", field="ids")
    op = RemoveItems(key.project_id, name, ids[:MAX_ITEMS], actor(request, key), time.time_ns() // 1000)
    return JSON((await request.app.state.db.writer.write(op)).wire())


@router.get("/api/datasets", summary="The project's datasets")
def list_(request: Request, key: ApiKeyDep) -> JSON:
    with request.app.state.db.read() as conn:
        return JSON({"data": [ds.wire() for ds in list_datasets(conn, key.project_id)]})


@router.get("/api/datasets/{name}", summary="A dataset and a page of its items")
def get(
    name: str, request: Request, key: ApiKeyDep, version: int | None = None, after: int = 0, limit: int = 100
) -> JSON:
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit: a whole number from 1 to 1000", field="limit")
    with request.app.state.db.read() as conn:
        dataset = get_dataset(conn, key.project_id, name, version)
        items = list_items(conn, dataset, max(0, min(after, 2**31 - 1)), limit)
    return JSON(
        {**dataset.wire(), "data": items, "nextAfter": items[-1]["id"] if len(items) == limit else None}
    )


@router.post(
    "/api/datasets/{name}/export", summary="Stream a dataset as fine-tuning chat JSONL, JSONL or CSV"
)
async def export(name: str, request: Request, key: ApiKeyDep) -> StreamingResponse:
    """Body: ``{"format": "openai-chat" | "jsonl" | "csv", "version"?}``. ``openai-chat`` is OpenAI's
    fine-tuning format: ``{"messages": [...the input's messages, {"role": "assistant", "content":
    expected output}]}`` a line (items without an expected output are left out)."""
    body = await read_json(request)
    fmt = body.get("format", "jsonl")
    if fmt not in EXPORT_FORMATS:
        raise InvalidInput(f"format: expected one of {', '.join(EXPORT_FORMATS)}", field="format")
    version = body.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise InvalidInput("version: a whole number", field="version")
    with request.app.state.db.read() as conn:
        dataset = get_dataset(conn, key.project_id, name, version)
    chunks = export_items(request.app.state.db, dataset, fmt)

    def stream() -> Iterator[bytes]:
        yield from chunks

    media = "text/csv" if fmt == "csv" else "application/x-ndjson"
    extension = "csv" if fmt == "csv" else "jsonl"
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:60]
    return StreamingResponse(
        stream(),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{safe}-v{dataset.version}.{extension}"'},
    )
