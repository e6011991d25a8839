"""The orders a list of generations can be read in, and keyset cursors that page through each.

Newest first is the default and stays what it was: ``(ts_us, id)`` descending, an index walk, with the
API's cursors (``queries.encode_cursor``). A list may also be sorted by cost, latency or tokens, either
way; its ORDER BY comes from the one query compiler (``mongo.filter.order_by``: a missing value sorts
as the smallest, as in MongoDB), then the id, so every row has one place and a cursor (the sort value
and the id of a page's last row) resumes exactly after it, whatever arrives meanwhile.

A cursor read in :meth:`Ordering.reversed` order pages backwards: the page before a row is the page
after it in the reversed order, read and turned round (``list_rows(..., order=o.reversed())``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_

from ....errors import InvalidInput
from ... import tables as t
from ...mongo.fields import COLUMNS, doc_field
from ...mongo.filter import order_by

__all__ = ["NEWEST", "SORTS", "Ordering", "parse_sort"]

g = t.generations

# The name a list's ``sort=`` gives -> the record's field path (a column each).
SORTS: dict[str, str] = {
    "time": "timestamp",
    "cost": "usage.cost",
    "latency": "performance.latency",
    "tokens": "usage.totalTokens",
}


@dataclass(frozen=True)
class Ordering:
    """A list order: the key of :data:`SORTS` and its direction."""

    key: str = "time"
    descending: bool = True

    @property
    def text(self) -> str:
        """As ``sort=`` writes it: ``cost`` (ascending) or ``-cost`` (descending)."""
        return ("-" if self.descending else "") + self.key

    @property
    def is_default(self) -> bool:
        return self.key == "time" and self.descending

    def reversed(self) -> Ordering:
        """The same order read backwards (to page to the previous page)."""
        return Ordering(self.key, not self.descending)

    @property
    def _column(self) -> Any:
        return g.c[COLUMNS[SORTS[self.key]][0]]

    def terms(self) -> list[ColumnElement[Any]]:
        """ORDER BY terms: the compiler's sort of the key, then the id the same way."""
        path = SORTS[self.key]
        terms = order_by({path: -1 if self.descending else 1}, lambda p: doc_field(g, p))
        return [*terms, g.c.id.desc() if self.descending else g.c.id.asc()]

    def after(self, cursor: str) -> ColumnElement[bool]:
        """The rows that come after the cursor's row in this order."""
        value, gen_id = self._decode(cursor)
        col = self._column
        beyond_id = g.c.id < gen_id if self.descending else g.c.id > gen_id
        if value is None:  # missing values are the smallest: last going down, first going up
            rest = false() if self.descending else col.is_not(None)
            return or_(and_(col.is_(None), beyond_id), rest)
        beyond = col < value if self.descending else col > value
        nulls = col.is_(None) if self.descending else false()
        return or_(beyond, and_(col == value, beyond_id), nulls)

    def cursor(self, row: Mapping[Any, Any]) -> str:
        """The cursor after a list row (the columns of ``queries.list_rows``). It names the key, not
        the direction: the reversed order reads the same cursor (to the page before the row)."""
        value = row[self._column.name]
        if self.key == "time":  # as the API's cursors are (queries.encode_cursor)
            return _encode(f"{value}|{row['id']}")
        return _encode(f"{self.key}|{'' if value is None else repr(value)}|{row['id']}")

    def _decode(self, cursor: str) -> tuple[Any, str]:
        try:
            text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
            if self.key == "time":
                ts, gen_id = text.split("|", 1)
                return int(ts), gen_id
            sort, raw, gen_id = text.split("|", 2)
            if sort != self.key:
                raise ValueError(sort)
            if raw == "":
                return None, gen_id
            return (float(raw) if self.key in ("cost", "latency") else int(raw)), gen_id
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise InvalidInput(
                "cursor is not valid for this sort: pass the cursor of a previous page", field="cursor"
            ) from None


NEWEST = Ordering()


def _encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def parse_sort(text: str | None) -> Ordering:
    """``sort=`` of a list: ``time``, ``cost``, ``latency`` or ``tokens``, ``-`` first for descending;
    empty is newest first. InvalidInput naming ``sort`` for anything else."""
    if not text:
        return NEWEST
    key = text.lstrip("-")
    if key not in SORTS or len(text) - len(key) > 1:
        raise InvalidInput(f"sort: expected one of {', '.join(SORTS)} (with - for descending)", field="sort")
    return Ordering(key, text.startswith("-"))
