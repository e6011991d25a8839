"""Export of generations as a streamed JSONL or CSV file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from ...errors import InvalidInput
from ...store.generations.reads.export import export
from ...store.mongo.filter import with_dollars
from ..auth import ApiKeyDep
from ..body import read_json

router = APIRouter(tags=["export"])

_BODY_KEYS = ("format", "filters", "fields")


@router.post("/api/generations/export", summary="Stream generations as JSONL or CSV")
async def export_(request: Request, key: ApiKeyDep) -> StreamingResponse:
    """Body: ``{"format": "jsonl"|"csv"|"openai-chat", "filters": {MongoDB-style}, "fields": [...]}``.

    ``openai-chat`` writes OpenAI fine-tuning examples: each generation's input messages and, as the
    assistant's answer, its user's ``betterResponse`` when one was given, else its output.

    ``filters`` is the filter of ``/api/generations/query``; its operators may also be written without
    ``$`` (``{"timestamp": {"gte": "2023-01-01T00:00:00Z"}}``). No row limit; memory stays flat."""
    body = await read_json(request)
    for name in body:
        if name not in _BODY_KEYS:
            raise InvalidInput(f"unknown field {name!r}; expected {', '.join(_BODY_KEYS)}", field=str(name))
    fmt = body.get("format", "jsonl")
    filters = body.get("filters")
    if filters is not None and not isinstance(filters, dict):
        raise InvalidInput("filters: expected a MongoDB-style filter object", field="filters")
    chunks = export(request.app.state.db, key.project_id, with_dollars(filters), fmt, body.get("fields"))
    # The first piece raises a bad format, filter or field list now, before the 200 is sent.
    first = await run_in_threadpool(next, chunks, b"")

    def stream() -> Iterator[bytes]:
        yield first
        yield from chunks

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    media = "text/csv" if fmt == "csv" else "application/x-ndjson"
    extension = "csv" if fmt == "csv" else "jsonl"
    return StreamingResponse(
        stream(),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="generations-{stamp}.{extension}"'},
    )
