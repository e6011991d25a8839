"""The list filter of generations as query strings write it (``?model.id=gpt-4o&from=...``).

The API's ``GET /api/generations``, the dashboard and ``sightline export --filter`` read their
filters here and hand the store a MongoDB-style filter (:meth:`GenerationFilter.to_mongo`), compiled
by the one query compiler like those of ``/api/generations/query``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..errors import InvalidInput
from ..schema import SCORE_NAME, utc
from ..store.generations.records import from_us, iso, to_us
from ..store.generations.search import parse_query

__all__ = ["MAX_LIMIT", "GenerationFilter", "parse_time"]

MAX_LIMIT = 1000


def parse_time(name: str, value: str) -> int:
    """An ISO 8601 time (or epoch seconds) as microseconds; ``InvalidInput`` naming ``name`` if neither."""
    try:
        if value.replace(".", "", 1).isdigit():
            us = int(float(value) * 1_000_000)
            from_us(us)  # a time a date can hold (years 1 to 9999)
            return us
        return to_us(utc(datetime.fromisoformat(value.replace("Z", "+00:00"))))
    except (ValueError, OverflowError, OSError):
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
# filter attribute -> the query parameter it is written back as, and the record's field path
_CANONICAL = {
    "model_id": ("model.id", "model.id"),
    "output_type": ("output.type", "output.type"),
    "user_id": ("userId", "metadata.userId"),
    "session_id": ("sessionId", "metadata.sessionId"),
    "run_id": ("runId", "runId"),
    "chat_id": ("chatId", "chatId"),
    "template_name": ("template.name", "template.name"),
    "status": ("status", "status"),
    "environment": ("environment", "environment"),
    "feedback_thumbs": ("feedback.thumbs", "feedback.thumbs"),
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
_FEEDBACK = ("feedback.rating", "feedback.score", "feedback.thumbs")
_SCORE_NAME = re.compile(SCORE_NAME)


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
    # score name -> its condition ({"$eq": 1.0}, {"$gte": 0.5, "$lte": 1}, {"$exists": True}, ...)
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    score_params: dict[str, str] = field(default_factory=dict)
    # Free-text search of prompts, outputs, template names and metadata values (store/generations/search.py)
    q: str | None = None

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
            elif name.startswith("scores.") and len(name) > len("scores."):
                f.add_score(name, value)
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
            elif name == "q":
                parse_query(value, "q")  # a bad search is the caller's, named q (not $text)
                f.q = value
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

    def add_score(self, param: str, value: str) -> None:
        """``scores.<name>=<number or label>`` (``*``: any score of that name), ``scores.<name>.min=`` and
        ``scores.<name>.max=`` (its value in a range)."""
        rest = param[len("scores.") :]
        name, _, bound = rest.rpartition(".")
        if not name or bound not in ("min", "max"):
            name, bound = rest, ""
        if not _SCORE_NAME.fullmatch(name) or len(name) > 100:
            raise InvalidInput(f"{param}: a score's name is dotted letters, digits, '_' and '-'", field=param)
        condition = self.scores.setdefault(name, {})
        if bound:
            try:
                number = float(value)
            except ValueError:
                raise InvalidInput(f"{param}: expected a number, got {value!r}", field=param) from None
            if not math.isfinite(number):
                raise InvalidInput(f"{param}: expected a finite number", field=param)
            condition["$gte" if bound == "min" else "$lte"] = number
        elif value == "*":
            condition["$exists"] = True
        else:
            try:
                number = float(value)
                condition["$eq"] = number if math.isfinite(number) else value
            except ValueError:
                condition["$eq"] = value  # a label
        self.score_params[param] = value

    def as_params(self) -> dict[str, str]:
        """The query parameters that build this filter again (for links that keep a view)."""
        out = {
            name: str(getattr(self, attr))
            for attr, (name, _) in _CANONICAL.items()
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
        out.update(self.score_params)
        if self.q is not None:
            out["q"] = self.q
        return out

    def to_mongo(self) -> dict[str, Any]:
        """This filter as the MongoDB-style filter of ``/api/generations/query`` (what the store takes)."""
        out: dict[str, Any] = {
            path: getattr(self, attr)
            for attr, (_, path) in _CANONICAL.items()
            if getattr(self, attr) is not None
        }
        if self.cache_hit is not None:
            out["cacheHit"] = self.cache_hit
        rating: dict[str, Any] = {}
        if self.feedback_rating is not None:
            rating["$eq"] = self.feedback_rating
        if self.feedback_min_rating is not None:
            rating["$gte"] = self.feedback_min_rating
        if rating:
            out["feedback.rating"] = rating
        if self.has_feedback is not None:
            any_feedback = [{path: {"$exists": True}} for path in _FEEDBACK]
            out["$or" if self.has_feedback else "$nor"] = any_feedback
        when: dict[str, Any] = {}
        if self.from_us is not None:
            when["$gte"] = iso(self.from_us)
        if self.to_us is not None:
            when["$lte"] = iso(self.to_us)
        if when:
            out["timestamp"] = when
        for key, value in self.metadata.items():
            out[f"metadata.{key}"] = value
        for name, condition in self.scores.items():
            out[f"scores.{name}"] = condition
        if self.q is not None:
            out["$text"] = {"$search": self.q}
        return out
