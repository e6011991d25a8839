"""Reading generations: filters, newest-first cursor pages, one record, and records as the API shows them."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, exists, or_, select

from ...errors import InvalidInput, NotFound
from ...schema import utc
from .. import tables as t
from .records import iso, to_us

__all__ = [
    "GenerationFilter",
    "Page",
    "decode_cursor",
    "encode_cursor",
    "get_generation",
    "list_generations",
    "parse_time",
    "context",
    "to_wire",
]

g = t.generations
MAX_LIMIT = 1000


def parse_time(name: str, value: str) -> int:
    """An ISO 8601 time (or epoch seconds) as microseconds; ``InvalidInput`` naming ``name`` if neither."""
    try:
        if value.replace(".", "", 1).isdigit():
            return int(float(value) * 1_000_000)
        return to_us(utc(datetime.fromisoformat(value.replace("Z", "+00:00"))))
    except ValueError:
        raise InvalidInput(f"{name}: {value!r} is not an ISO 8601 time", field=name) from None


def _bool(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise InvalidInput(f"{name}: expected true or false, got {value!r}", field=name)


def _int(name: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(f"{name}: expected a whole number, got {value!r}", field=name) from None
    if not low <= number <= high:
        raise InvalidInput(f"{name}: must be from {low} to {high}, got {number}", field=name)
    return number


# query parameter -> GenerationFilter attribute, for the plain text filters
_TEXT_PARAMS = {
    "model.id": "model_id",
    "model": "model_id",
    "output.type": "output_type",
    "metadata.userId": "user_id",
    "userId": "user_id",
    "runId": "run_id",
    "chatId": "chat_id",
    "template.name": "template_name",
    "template": "template_name",
    "status": "status",
    "environment": "environment",
    "metadata.sessionId": "session_id",
    "sessionId": "session_id",
    "feedback.thumbs": "feedback_thumbs",
}
# filter attribute -> the query parameter it is written back as
_CANONICAL = {
    "model_id": "model.id",
    "output_type": "output.type",
    "user_id": "userId",
    "session_id": "sessionId",
    "run_id": "runId",
    "chat_id": "chatId",
    "template_name": "template.name",
    "status": "status",
    "environment": "environment",
    "feedback_thumbs": "feedback.thumbs",
}
_OTHER_PARAMS = {
    "from",
    "to",
    "limit",
    "cursor",
    "cacheHit",
    "feedback",
    "feedback.rating",
    "feedback.minRating",
}


@dataclass
class GenerationFilter:
    """What a listing of generations is narrowed to. Built from query parameters by :meth:`from_params`."""

    model_id: str | None = None
    output_type: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    run_id: str | None = None
    chat_id: str | None = None
    template_name: str | None = None
    status: str | None = None
    environment: str | None = None
    cache_hit: bool | None = None
    has_feedback: bool | None = None
    feedback_rating: int | None = None
    feedback_min_rating: int | None = None
    feedback_thumbs: str | None = None
    from_us: int | None = None
    to_us: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: Iterable[tuple[str, str]]) -> tuple[GenerationFilter, int, str | None]:
        """``(filter, limit, cursor)`` from query parameters; unknown or malformed ones raise InvalidInput."""
        f, limit, cursor = cls(), 50, None
        for name, raw in params:
            value = raw.strip()
            if value == "":
                continue
            if name in _TEXT_PARAMS:
                setattr(f, _TEXT_PARAMS[name], value)
            elif name.startswith("metadata.") and len(name) > len("metadata."):
                f.metadata[name[len("metadata.") :]] = value
            elif name == "from":
                f.from_us = parse_time(name, value)
            elif name == "to":
                f.to_us = parse_time(name, value)
            elif name == "limit":
                limit = _int(name, value, 1, MAX_LIMIT)
            elif name == "cursor":
                cursor = value
            elif name == "cacheHit":
                f.cache_hit = _bool(name, value)
            elif name == "feedback":
                f.has_feedback = _bool(name, value)
            elif name == "feedback.rating":
                f.feedback_rating = _int(name, value, 1, 5)
            elif name == "feedback.minRating":
                f.feedback_min_rating = _int(name, value, 1, 5)
            elif name not in _OTHER_PARAMS:
                raise InvalidInput(f"unknown filter {name!r}", field=name)
        if f.status is not None and f.status not in ("ok", "error"):
            raise InvalidInput(f"status: expected ok or error, got {f.status!r}", field="status")
        if f.feedback_thumbs is not None and f.feedback_thumbs not in ("up", "down"):
            raise InvalidInput(
                f"feedback.thumbs: expected up or down, got {f.feedback_thumbs!r}", field="feedback.thumbs"
            )
        return f, limit, cursor

    def as_params(self) -> dict[str, str]:
        """The query parameters that build this filter again (for links that keep a view)."""
        out = {
            name: str(getattr(self, attr))
            for attr, name in _CANONICAL.items()
            if getattr(self, attr) is not None
        }
        if self.cache_hit is not None:
            out["cacheHit"] = str(self.cache_hit).lower()
        if self.has_feedback is not None:
            out["feedback"] = str(self.has_feedback).lower()
        if self.feedback_rating is not None:
            out["feedback.rating"] = str(self.feedback_rating)
        if self.feedback_min_rating is not None:
            out["feedback.minRating"] = str(self.feedback_min_rating)
        if self.from_us is not None:
            out["from"] = iso(self.from_us)
        if self.to_us is not None:
            out["to"] = iso(self.to_us)
        out.update({f"metadata.{k}": v for k, v in self.metadata.items()})
        return out

    def conditions(self, project_id: int) -> list[ColumnElement[bool]]:
        """The SQL conditions of this filter, scoped to ``project_id``."""
        cond: list[ColumnElement[bool]] = [g.c.project_id == project_id]
        for attr, column in (
            ("model_id", g.c.model_id),
            ("output_type", g.c.output_type),
            ("user_id", g.c.user_id),
            ("session_id", g.c.session_id),
            ("run_id", g.c.run_id),
            ("chat_id", g.c.chat_id),
            ("template_name", g.c.template_name),
            ("status", g.c.status),
            ("environment", g.c.environment),
            ("cache_hit", g.c.cache_hit),
            ("feedback_rating", g.c.feedback_rating),
            ("feedback_thumbs", g.c.feedback_thumbs),
        ):
            value = getattr(self, attr)
            if value is not None:
                cond.append(column == value)
        if self.feedback_min_rating is not None:
            cond.append(g.c.feedback_rating >= self.feedback_min_rating)
        if self.has_feedback is not None:
            any_feedback = or_(
                g.c.feedback_rating.is_not(None),
                g.c.feedback_score.is_not(None),
                g.c.feedback_thumbs.is_not(None),
            )
            cond.append(any_feedback if self.has_feedback else ~any_feedback)
        if self.from_us is not None:
            cond.append(g.c.ts_us >= self.from_us)
        if self.to_us is not None:
            cond.append(g.c.ts_us <= self.to_us)
        for key, value in self.metadata.items():
            cond.append(metadata_condition(project_id, key, value))
        return cond


def metadata_condition(project_id: int, key: str, value: str) -> ColumnElement[bool]:
    """Generations whose metadata ``key`` has the text ``value`` (from the metadata index)."""
    m = t.generation_metadata
    if key == "tags":
        key, value = f"tags:{value}", "true"
    return exists().where(
        m.c.generation_id == g.c.id, m.c.project_id == project_id, m.c.key == key, m.c.value == value
    )


def encode_cursor(ts_us: int, gen_id: str) -> str:
    return base64.urlsafe_b64encode(f"{ts_us}|{gen_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts, gen_id = text.split("|", 1)
        return int(ts), gen_id
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidInput(
            "cursor is not valid: pass the nextCursor of a previous page", field="cursor"
        ) from None


@dataclass
class Page:
    data: list[dict[str, Any]]
    next_cursor: str | None


def page_query(
    f: GenerationFilter, project_id: int, limit: int, cursor: str | None, columns: Sequence[Any] = (g,)
) -> Select[Any]:
    """Newest first (then by id), starting after ``cursor``: keyset pagination, fast at any depth."""
    q = select(*columns).where(*f.conditions(project_id))
    if cursor:
        ts, gen_id = decode_cursor(cursor)
        q = q.where(or_(g.c.ts_us < ts, and_(g.c.ts_us == ts, g.c.id < gen_id)))
    return q.order_by(g.c.ts_us.desc(), g.c.id.desc()).limit(limit + 1)


def list_generations(
    conn: Connection, project_id: int, f: GenerationFilter, limit: int = 50, cursor: str | None = None
) -> Page:
    rows = conn.execute(page_query(f, project_id, limit, cursor)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].ts_us, rows[-1].id) if more and rows else None
    return Page(to_wire(conn, project_id, [r._mapping for r in rows]), next_cursor)


def get_generation(conn: Connection, project_id: int, gen_id: str) -> dict[str, Any]:
    row = conn.execute(select(g).where(g.c.id == gen_id, g.c.project_id == project_id)).first()
    if row is None:
        raise NotFound(f"no generation {gen_id!r} in this project")
    return to_wire(conn, project_id, [row._mapping])[0]


@dataclass
class Context:
    """What a page of rows needs besides their bodies: their runs and their latest feedback."""

    runs: dict[str, Any]
    feedback: dict[str, Any]

    def overlay(self, row: Mapping[Any, Any], body: dict[str, Any]) -> dict[str, Any]:
        """``body`` completed with its environment, its run's userId and metadata, its feedback."""
        body["environment"] = row["environment"]
        run = self.runs.get(row["run_id"]) if row["run_id"] else None
        if run is not None:
            meta = {**body.get("metadata", {}), **(run.body.get("metadata") or {})}
            if run.user_id:
                meta["userId"] = run.user_id
            body["metadata"] = meta
        if row["id"] in self.feedback:
            body["feedback"] = self.feedback[row["id"]]
        return body


def context(conn: Connection, project_id: int, rows: Sequence[Mapping[Any, Any]]) -> Context:
    """The runs and latest feedback of ``rows`` (two queries at most, whatever their number)."""
    run_ids = sorted({r["run_id"] for r in rows if r["run_id"]})
    runs: dict[str, Any] = {}
    if run_ids:
        q = select(t.runs.c.id, t.runs.c.user_id, t.runs.c.body).where(
            t.runs.c.project_id == project_id, t.runs.c.id.in_(run_ids)
        )
        runs = {r.id: r for r in conn.execute(q)}
    feedback: dict[str, Any] = {}
    with_feedback = [
        r["id"]
        for r in rows
        if r["feedback_rating"] is not None
        or r["feedback_score"] is not None
        or r["feedback_thumbs"] is not None
    ]
    if with_feedback:
        fb = t.feedback
        q = (
            select(fb.c.generation_id, fb.c.body)
            .where(fb.c.generation_id.in_(with_feedback))
            .order_by(fb.c.ts_us, fb.c.id)
        )
        feedback = {r.generation_id: r.body for r in conn.execute(q)}
    return Context(runs, feedback)


def to_wire(conn: Connection, project_id: int, rows: Sequence[Mapping[Any, Any]]) -> list[dict[str, Any]]:
    """Records as the API returns them: the stored body, its run's userId and metadata, latest feedback."""
    if not rows:
        return []
    ctx = context(conn, project_id, rows)
    return [ctx.overlay(r, dict(r["body"])) for r in rows]
