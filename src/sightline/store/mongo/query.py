"""MongoDB-style queries over generations: ``find`` and ``aggregate``, run in the database.

The compilers live in ``mongo.fields`` (field paths), ``mongo.filter`` (filters, sorts) and
``mongo.aggregate`` (pipelines); this module is what the HTTP layer calls::

    find(conn, project_id, {"usage.totalTokens": {"$gt": 1000}}, sort={"timestamp": -1}, limit=50)
    aggregate(conn, project_id, [{"$group": {"_id": "$model.id", "n": {"$sum": 1}}}])

Both are always scoped to one project (and, when given, one environment). Every mistake in a
filter, sort or pipeline raises :class:`sightline.errors.InvalidInput` naming the operator,
stage or field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, RowMapping, select

from ...errors import InvalidInput
from .. import tables as t
from ..generations.search import plan_searches
from .aggregate import CompiledAggregate, aggregate, compile_aggregate
from .fields import Field, doc_field
from .filter import compile_filter, compile_where, order_by, text_search

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "CompiledAggregate",
    "aggregate",
    "compile_aggregate",
    "compile_filter",
    "find",
]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def find(
    conn: Connection,
    project_id: int,
    filter: Mapping[str, Any] | None = None,
    sort: Mapping[str, Any] | None = None,
    limit: int = DEFAULT_LIMIT,
    skip: int = 0,
    *,
    environment: str | None = None,
) -> list[RowMapping]:
    """The records of one project matching ``filter``, in ``sort`` order (default: newest first).

    Returns the ``generations`` rows; ``generations.to_wire`` turns them into records as the API shows them.
    ``limit`` is 1 to 1000; ``skip`` records are passed over first.
    """
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be a whole number from 1 to {MAX_LIMIT}", field="limit")
    if not isinstance(skip, int) or isinstance(skip, bool) or not 0 <= skip < 2**63:
        raise InvalidInput(f"skip must be a whole number from 0 to {2**63 - 1}", field="skip")
    gens = t.generations

    def resolve(path: str) -> Field:
        return doc_field(gens, path)

    stmt = select(gens).where(
        gens.c.project_id == project_id,
        compile_where(plan_searches(conn, filter) or {}, resolve, text=text_search(gens.c.seq)),
    )
    if environment is not None:
        stmt = stmt.where(gens.c.environment == environment)
    stmt = stmt.order_by(*order_by(sort or {"timestamp": -1}, resolve)).limit(limit)
    if skip:
        stmt = stmt.offset(skip)
    return [row._mapping for row in conn.execute(stmt)]
