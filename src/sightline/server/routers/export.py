"""Export of generations as a streamed JSONL or CSV file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from ...errors import InvalidInput
from ...store.generations.export import export
from ...store.generations.queries import GenerationFilter
from ..auth import ApiKeyDep
from ..body import read_json

router = APIRouter(tags=["export"])


@router.post("/api/generations/export", summary="Stream generations as JSONL or CSV")
async def export_(request: Request, key: ApiKeyDep) -> StreamingResponse:
    """Body: ``{"format": "jsonl"|"csv", "filters": {<list filters>}, "fields": ["id", "model.id", ...]}``.

    No row limit; memory stays flat."""
    body = await read_json(request)
    fmt = body.get("format", "jsonl")
    filters = body.get("filters") or {}
    if not isinstance(filters, dict) or not all(
        isinstance(v, str | int | float | bool) for v in filters.values()
    ):
        raise InvalidInput("filters: expected an object of filter name to value", field="filters")
    params = [(k, str(v).lower() if isinstance(v, bool) else str(v)) for k, v in filters.items()]
    f, _, _ = GenerationFilter.from_params([p for p in params if p[0] not in ("limit", "cursor")])
    chunks = export(request.app.state.db.engine, key.project_id, f, fmt, body.get("fields"))
    # The first piece raises a bad format or field list now, before the 200 is sent.
    first = await run_in_threadpool(next, chunks, b"")

    def stream() -> Iterator[bytes]:
        yield first
        yield from chunks

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    media = "application/x-ndjson" if fmt == "jsonl" else "text/csv"
    return StreamingResponse(
        stream(),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="generations-{stamp}.{fmt}"'},
    )
