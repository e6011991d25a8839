"""The time-range picker: ``range=24h|7d|30d|90d|all`` relative to now, or ``from``/``to`` times."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from ....errors import InvalidInput
from ...filters import parse_time

__all__ = ["RANGES", "TimeRange", "fitting_range", "input_value", "now_us", "parse_range"]

_HOUR = 3600 * 1_000_000
RANGES = {
    "1h": ("Last hour", _HOUR),
    "24h": ("Last 24 hours", 24 * _HOUR),
    "7d": ("Last 7 days", 7 * 24 * _HOUR),
    "30d": ("Last 30 days", 30 * 24 * _HOUR),
    "90d": ("Last 90 days", 90 * 24 * _HOUR),
}


def now_us() -> int:
    return time.time_ns() // 1000


def input_value(us: int | None) -> str:
    """A time as a ``datetime-local`` input shows it (UTC, to the minute)."""
    if us is None:
        return ""
    return datetime.fromtimestamp(us / 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M")


@dataclass(frozen=True, slots=True)
class TimeRange:
    key: str  # a RANGES key, "custom" or "all"
    from_us: int | None
    to_us: int
    label: str

    def params(self) -> dict[str, str]:
        """The query parameters that pick this range again."""
        if self.key == "custom":
            return {"range": "custom", "from": input_value(self.from_us), "to": input_value(self.to_us)}
        return {"range": self.key}


def parse_range(
    params: Mapping[str, str], default: str = "7d", allow_all: bool = False, now: int | None = None
) -> TimeRange:
    """The range a page's query asks for: ``range`` (a preset), else ``from``/``to``, else ``default``.

    ``range=custom`` (or no ``range``) with ``from`` or ``to`` picks those times.
    """
    now = now_us() if now is None else now
    key = params.get("range", "").strip()
    start, end = params.get("from", "").strip(), params.get("to", "").strip()
    if key in ("", "custom") and (start or end):
        from_us = parse_time("from", start) if start else None
        to_us = parse_time("to", end) if end else now
        if from_us is not None and from_us >= to_us:
            raise InvalidInput("from must be before to", field="from")
        return TimeRange("custom", from_us, to_us, "Custom range")
    if key in ("", "custom"):
        key = default
    if key == "all" and allow_all:
        return TimeRange("all", None, now, "All time")
    if key not in RANGES:
        choices = ", ".join([*RANGES, *(["all"] if allow_all else [])])
        raise InvalidInput(f"range: expected one of {choices}; got {key!r}", field="range")
    label, span = RANGES[key]
    return TimeRange(key, now - span, now, label)


def fitting_range(span: tuple[int, int] | None, now: int | None = None) -> str:
    """The preset that fits the data (``span``: its oldest and newest times): the last 24 hours when
    anything happened in them; else the shortest range holding all of it, up to ``all``."""
    now = now_us() if now is None else now
    if span is None:
        return "24h"
    oldest, newest = span
    if newest >= now - RANGES["24h"][1]:
        return "24h"
    for key in ("7d", "30d", "90d"):
        if oldest >= now - RANGES[key][1]:
            return key
    return "all"
