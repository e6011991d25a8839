"""Exporting generations as JSON Lines, CSV or OpenAI fine-tuning chat examples, streamed in constant
memory with no row limit.

The rows are chosen by a MongoDB-style filter, compiled by the one query compiler (``store.mongo``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal

import orjson
from sqlalchemy import Text, cast, func, select

from ....errors import InvalidInput
from ... import tables as t
from ...engine.database import Database
from ...mongo.fields import check_known
from ...mongo.filter import compile_filter
from .queries import Context, context

__all__ = ["DEFAULT_CSV_FIELDS", "chat_example", "count", "csv_cell", "export", "pick"]

Format = Literal["jsonl", "csv", "openai-chat"]
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
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP, "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def pick(record: dict[str, Any], path: str) -> Any:
    """The value at a dotted path of a record, or ``None``."""
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _check_fields(fields: Any) -> list[str] | None:
    if fields is None:
        return None
    if (
        not isinstance(fields, list | tuple)
        or not fields
        or not all(isinstance(f, str) and f for f in fields)
    ):
        raise InvalidInput(
            "fields must be a non-empty list of field paths such as 'model.id'", field="fields"
        )
    for path in fields:
        check_known(path)  # an unknown field is a 400 naming it, never a column of nulls
    return list(fields)


def _messages(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, list) and all(isinstance(m, Mapping) and "role" in m for m in value):
        return [{"role": m["role"], "content": m.get("content")} for m in value]
    if isinstance(value, Mapping) and isinstance(value.get("messages"), list):
        return _messages(value["messages"])
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return [{"role": "user", "content": text}]


def chat_example(input: Any, expected: Any) -> dict[str, Any] | None:
    """One fine-tuning example in OpenAI's chat format: the input's messages (a text is the user's
    message) and ``expected`` as the assistant's answer; None when there is no expected answer."""
    if expected is None or expected == "":
        return None
    answer = expected if isinstance(expected, str) else orjson.dumps(expected).decode()
    messages = _messages(input)
    while messages and messages[-1]["role"] == "assistant":
        messages.pop()  # the answer to learn is the one given here
    if not messages:
        return None
    return {"messages": [*messages, {"role": "assistant", "content": answer}]}


def csv_cell(value: Any) -> Any:
    """A value as a spreadsheet should read it: ``true``/``false``, plain decimals (never ``9e-06``),
    JSON for nested values, and text that would start a formula neutralised with a leading quote."""
    if isinstance(value, dict) and value.get("type") in ("string", "boolean") and "value" in value:
        value = value["value"]  # a typed metadata value: its plain value reads better in a sheet
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        # repr is the shortest text that reads back as the same float; Decimal writes it out in full.
        text = format(Decimal(repr(value)), "f")
        return text[:-2] if text.endswith(".0") else text
    if isinstance(value, dict | list):
        value = orjson.dumps(value).decode()
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _conditions(project_id: int, filter: Mapping[str, Any] | None) -> list[Any]:
    g = t.generations
    return [g.c.project_id == project_id, compile_filter(filter or {})]


def count(db: Database, project_id: int, filter: Mapping[str, Any] | None = None) -> int:
    """How many generations of the project ``filter`` matches."""
    with db.read() as conn:
        query = select(func.count()).select_from(t.generations).where(*_conditions(project_id, filter))
        return int(conn.scalar(query) or 0)


def export(
    db: Database,
    project_id: int,
    filter: Mapping[str, Any] | None = None,
    fmt: Format = "jsonl",
    fields: Sequence[str] | None = None,
) -> Iterator[bytes]:
    """Yield the file in pieces: generations matching the MongoDB-style ``filter``, newest first, each
    as a line or a CSV row (of ``fields``, dotted paths; default: whole records, or the usual columns).

    Rows are read with a server-side cursor in chunks, so memory stays flat however many there are;
    each chunk has the read time budget. Whole records in JSON Lines are written from the stored JSON
    text as it is (only the environment, feedback and scores are spliced in): parsing and re-serialising
    every body would cost more than the rest.
    """
    if fmt not in ("jsonl", "csv", "openai-chat"):
        raise InvalidInput(f"format must be 'jsonl', 'csv' or 'openai-chat', got {fmt!r}", field="format")
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
    where = _conditions(project_id, filter)  # compiled now: a bad filter raises before any byte is sent
    q = select(*columns).where(*where).order_by(g.c.ts_us.desc(), g.c.id.desc())
    header = chosen or list(DEFAULT_CSV_FIELDS)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if fmt == "csv":
        writer.writerow(header)
    # The CSV header goes out with the first rows: the first piece is the one the server waits for
    # before it answers 200, so a query that fails (past its budget) fails before that.
    pending = buffer.getvalue().encode()
    with db.stream() as (conn, budget):
        result = conn.execution_options(stream_results=True, yield_per=_CHUNK).execute(q)
        for chunk in result.partitions(_CHUNK):
            rows = [r._mapping for r in chunk]
            ctx = context(conn, project_id, rows)
            if fmt == "jsonl" and chosen is None:
                piece = b"".join(_line(ctx, row) for row in rows)
            elif fmt == "openai-chat":
                records = [ctx.overlay(row, orjson.loads(row["body"])) for row in rows]
                piece = b"".join(_chat_line(record) for record in records)
            else:
                records = [ctx.overlay(row, orjson.loads(row["body"])) for row in rows]
                if fmt == "jsonl":
                    piece = b"".join(
                        orjson.dumps({p: pick(rec, p) for p in header}) + b"\n" for rec in records
                    )
                else:
                    buffer.seek(0)
                    buffer.truncate()
                    writer.writerows([csv_cell(pick(rec, path)) for path in header] for rec in records)
                    piece = buffer.getvalue().encode()
            yield pending + piece
            pending = b""
            budget.restart()  # the next chunk has the whole budget again
    if pending:
        yield pending


def _chat_line(record: Mapping[str, Any]) -> bytes:
    """A generation as a fine-tuning example: its input, and its user's better response if one was
    given, else its output, as the assistant's answer; nothing for a failed call."""
    if record.get("status") == "error":
        return b""
    expected = (record.get("feedback") or {}).get("betterResponse") or (record.get("output") or {}).get(
        "content"
    )
    example = chat_example((record.get("input") or {}).get("content"), expected)
    return orjson.dumps(example) + b"\n" if example else b""


def _line(ctx: Context, row: Mapping[Any, Any]) -> bytes:
    """One JSON line of a whole record, spliced from its stored text when its run changes nothing."""
    text: str = row["body"]
    if row["run_id"] and row["run_id"] in ctx.runs:
        return orjson.dumps(ctx.overlay(row, orjson.loads(text))) + b"\n"
    extra = b',"environment":' + orjson.dumps(row["environment"])
    if row["id"] in ctx.feedback:
        extra += b',"feedback":' + orjson.dumps(ctx.feedback[row["id"]])
    if row["id"] in ctx.scores:
        extra += b',"scores":' + orjson.dumps(ctx.scores[row["id"]])
    raw = text.encode()
    return raw[: raw.rindex(b"}")] + extra + b"}\n"
