"""Exporting generations as JSON Lines or CSV, streamed in constant memory with no row limit."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import orjson
from sqlalchemy import Engine, Text, cast, func, select

from ...errors import InvalidInput
from .. import tables as t
from .queries import Context, GenerationFilter, context

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
    Whole records in JSON Lines are written from the stored JSON text as it is (only the environment
    and feedback are spliced in): parsing and re-serialising every body would cost more than the rest.
    """
    if fmt not in ("jsonl", "csv"):
        raise InvalidInput(f"format must be 'jsonl' or 'csv', got {fmt!r}", field="format")
    chosen = _check_fields(fields)
    g = t.generations
    columns = [
        g.c.id,
        g.c.environment,
        g.c.run_id,
        g.c.feedback_rating,
        g.c.feedback_score,
        g.c.feedback_thumbs,
        cast(g.c.body, Text).label("body"),
    ]
    q = select(*columns).where(*f.conditions(project_id)).order_by(g.c.ts_us.desc(), g.c.id.desc())
    header = chosen or list(DEFAULT_CSV_FIELDS)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if fmt == "csv":
        writer.writerow(header)
        yield buffer.getvalue().encode()
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=_CHUNK).execute(q)
        for chunk in result.partitions(_CHUNK):
            rows = [r._mapping for r in chunk]
            ctx = context(conn, project_id, rows)
            if fmt == "jsonl" and chosen is None:
                yield b"".join(_line(ctx, row) for row in rows)
                continue
            records = [ctx.overlay(row, orjson.loads(row["body"])) for row in rows]
            if fmt == "jsonl":
                yield b"".join(orjson.dumps({p: pick(rec, p) for p in header}) + b"\n" for rec in records)
            else:
                buffer.seek(0)
                buffer.truncate()
                writer.writerows([_csv_cell(pick(rec, path)) for path in header] for rec in records)
                yield buffer.getvalue().encode()


def _line(ctx: Context, row: Mapping[Any, Any]) -> bytes:
    """One JSON line of a whole record, spliced from its stored text when its run changes nothing."""
    text: str = row["body"]
    if row["run_id"] and row["run_id"] in ctx.runs:
        return orjson.dumps(ctx.overlay(row, orjson.loads(text))) + b"\n"
    extra = b',"environment":' + orjson.dumps(row["environment"])
    if row["id"] in ctx.feedback:
        extra += b',"feedback":' + orjson.dumps(ctx.feedback[row["id"]])
    raw = text.encode()
    return raw[: raw.rindex(b"}")] + extra + b"}\n"
