"""Exporting generations as JSON Lines or CSV, streamed in constant memory with no row limit."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import orjson
from sqlalchemy import Engine, func, select

from ..errors import InvalidInput
from . import tables as t
from .generations import GenerationFilter, to_wire

__all__ = ["DEFAULT_CSV_FIELDS", "count", "export", "pick"]

Format = Literal["jsonl", "csv"]
_CHUNK = 2000
DEFAULT_CSV_FIELDS = (
    "id",
    "timestamp",
    "environment",
    "model.id",
    "metadata.userId",
    "template.name",
    "runId",
    "chatId",
    "status",
    "usage.promptTokens",
    "usage.completionTokens",
    "usage.totalTokens",
    "usage.cost",
    "performance.latency",
    "performance.timeToFirstToken",
    "cacheHit",
    "feedback.rating",
    "feedback.thumbs",
)


def pick(record: dict[str, Any], path: str) -> Any:
    """The value at a dotted path of a record, or ``None``."""
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _check_fields(fields: Sequence[str] | None) -> list[str] | None:
    if fields is None:
        return None
    if not isinstance(fields, list | tuple) or not all(isinstance(f, str) and f for f in fields):
        raise InvalidInput("fields must be a list of field paths such as 'model.id'", field="fields")
    return list(fields)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, dict) and value.get("type") in ("string", "boolean") and "value" in value:
        return value["value"]  # a typed metadata value: its plain value reads better in a sheet
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value


def count(engine: Engine, project_id: int, f: GenerationFilter) -> int:
    with engine.connect() as conn:
        return int(
            conn.scalar(select(func.count()).select_from(t.generations).where(*f.conditions(project_id))) or 0
        )


def export(
    engine: Engine,
    project_id: int,
    f: GenerationFilter,
    fmt: Format = "jsonl",
    fields: Sequence[str] | None = None,
) -> Iterator[bytes]:
    """Yield the file in pieces: generations matching ``f``, newest first, each as a line or a CSV row.

    Rows are read with a server-side cursor in chunks, so memory stays flat however many there are.
    """
    if fmt not in ("jsonl", "csv"):
        raise InvalidInput(f"format must be 'jsonl' or 'csv', got {fmt!r}", field="format")
    chosen = _check_fields(fields)
    g = t.generations
    q = select(g).where(*f.conditions(project_id)).order_by(g.c.ts_us.desc(), g.c.id.desc())
    columns = chosen or list(DEFAULT_CSV_FIELDS)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if fmt == "csv":
        writer.writerow(columns)
        yield buffer.getvalue().encode()
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=_CHUNK).execute(q)
        for chunk in result.partitions(_CHUNK):
            records = to_wire(conn, project_id, [r._mapping for r in chunk])
            if fmt == "jsonl":
                if chosen is not None:
                    records = [{path: pick(rec, path) for path in chosen} for rec in records]
                yield b"".join(orjson.dumps(rec) + b"\n" for rec in records)
            else:
                buffer.seek(0)
                buffer.truncate()
                writer.writerows([_csv_cell(pick(rec, path)) for path in columns] for rec in records)
                yield buffer.getvalue().encode()
