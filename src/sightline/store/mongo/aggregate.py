"""MongoDB-style aggregation pipelines over generation records, compiled to one SQL statement.

Stages run in the database in the order given: ``$match``, ``$sort``, ``$skip`` and ``$limit`` on
records, ``$group`` into results (``_id`` a field path, null, or an object of them, optionally
with ``$dateTrunc``), then ``$match``, ``$sort``, ``$skip``, ``$limit``, ``$project``, ``$count``
and further ``$group`` stages on those results. A stage that must see the output of an earlier
``$skip``/``$limit`` reads it from a subquery.

A pipeline without ``$group`` (or ``$count``) returns the matched records themselves.
Grouping on a path held in a column (``$model.id``, ``$usage.totalTokens``, …) reads the column,
never the JSON record, so the common analytics queries stay fast on large tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    CursorResult,
    FromClause,
    Integer,
    Select,
    String,
    cast,
    func,
    literal,
    null,
    select,
)

from ...errors import InvalidInput
from .. import tables as t
from ..generations.records import iso
from .fields import ColumnField, Field, JsonField, Kind, check_path, doc_field, fits
from .filter import check_no_nul, compile_where, order_by, text_search

__all__ = ["CompiledAggregate", "aggregate", "compile_aggregate"]

_MAX_STAGES = 50
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_UNIT_US = {
    "millisecond": 1_000,
    "second": 1_000_000,
    "minute": 60_000_000,
    "hour": 3_600_000_000,
    "day": 86_400_000_000,
    "week": 7 * 86_400_000_000,
}
# Days from the epoch (a Thursday) to the first day of a week starting on that day.
_WEEK_START = {
    "thursday": 0,
    "friday": 1,
    "saturday": 2,
    "sunday": 3,
    "monday": 4,
    "tuesday": 5,
    "wednesday": 6,
}


@dataclass(frozen=True, slots=True)
class _Out:
    """One value of a result: where it goes (``totalTokens``, ``_id``, ``_id.model``) and its SQL column."""

    path: str
    label: str
    kind: Kind


@dataclass(slots=True)
class _Relation:
    """The rows a pipeline has reached: records (``outs is None``) or results of a ``$group``.

    ``where``, ``order``, ``offset`` and ``limit`` are pending on ``source``; ``order`` holds field
    paths for records and column labels for results, so it can be re-read from a subquery.
    """

    source: FromClause
    outs: list[_Out] | None
    kinds: dict[str, Kind] = field(default_factory=dict)  # every result column of source (outs may drop some)
    where: list[ColumnElement[bool]] = field(default_factory=list)
    order: list[tuple[str, int]] = field(default_factory=list)
    offset: int = 0
    limit: int | None = None

    def field(self, path: str) -> Field:
        if self.outs is None:
            return doc_field(self.source, path)
        for out in self.outs:
            if out.path == path:
                return self._out_field(out, path)
        known = ", ".join(out.path for out in self.outs)
        raise InvalidInput(
            f"'{path}' is not a field of the results at this stage (they have: {known})", field=path
        )

    def statement(self, columns: Sequence[ColumnElement[Any]], cap: int | None = None) -> Select[Any]:
        stmt = select(*columns).select_from(self.source).where(*self.where)
        if self.order:
            if self.outs is None:
                stmt = stmt.order_by(*order_by(dict(self.order), self.field))
            else:
                stmt = stmt.order_by(*order_by({label: d for label, d in self.order}, self._label_field))
        limit = self.limit if cap is None or (self.limit is not None and self.limit < cap) else cap
        if self.offset:
            stmt = stmt.offset(self.offset)
        return stmt.limit(limit) if limit is not None else stmt

    def _out_field(self, out: _Out, path: str) -> Field:
        column = self.source.c[out.label]
        # A group key read from the JSON record is JSON itself: compared by JSON type, like the path.
        return JsonField(path, column, ()) if out.kind == "json" else ColumnField(path, column, out.kind)

    def _label_field(self, label: str) -> Field:
        return self._out_field(_Out(label, label, self.kinds[label]), label)

    def settled(self) -> _Relation:
        """The same rows, with any pending ``$skip``/``$limit`` applied in a subquery."""
        if not self.offset and self.limit is None:
            return self
        sub = self.statement(list(self.source.c)).subquery()
        return _Relation(sub, self.outs, self.kinds, order=list(self.order))


def _name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not name or name[0] == "$" or set(name) - _NAME_CHARS:
        raise InvalidInput(f"{where}: invalid field name {name!r} (use letters, digits, '_' and '-')")
    return name


def _count(value: Any, stage: str, minimum: int) -> int:
    # Both databases take 64-bit integers at most: a larger one is the caller's mistake, not a 500.
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value < 2**63:
        raise InvalidInput(
            f"{stage} needs a whole number from {minimum} to {2**63 - 1}", field=stage.split()[0]
        )
    return value


class _Pipeline:
    def __init__(self, rel: _Relation) -> None:
        self.rel = rel
        self.groups = 0

    def match(self, spec: Any) -> None:
        rel = self.rel.settled()
        # Records (not grouped results) have their search documents: $text finds them by seq.
        seq = rel.source.c.get("seq") if rel.outs is None else None
        rel.where.append(compile_where(spec, rel.field, text=text_search(seq) if seq is not None else None))
        self.rel = rel

    def sort(self, spec: Any) -> None:
        rel = self.rel.settled()
        if not isinstance(spec, Mapping) or not spec:
            raise InvalidInput("$sort needs a non-empty object of {field: 1 or -1}")
        order: list[tuple[str, int]] = []
        for path, direction in spec.items():
            if rel.outs is None:
                order.append((path, direction))
                continue
            outs = [o for o in rel.outs if o.path == path or o.path.startswith(f"{path}.")]
            if not outs:
                rel.field(check_path(path))  # raises, naming the fields there are
            order.extend((o.label, direction) for o in outs)
        # Check the paths and directions now, not when the statement is built.
        order_by(dict(order), rel.field if rel.outs is None else rel._label_field)
        rel.order = order
        self.rel = rel

    def skip(self, value: Any) -> None:
        n = _count(value, "$skip", 0)
        self.rel.offset += n
        if self.rel.limit is not None:
            self.rel.limit = max(0, self.rel.limit - n)

    def take(self, value: Any) -> None:
        n = _count(value, "$limit", 1)
        self.rel.limit = n if self.rel.limit is None else min(self.rel.limit, n)

    def project(self, spec: Any) -> None:
        rel = self.rel
        if rel.outs is None:
            raise InvalidInput("$project is supported after $group only")
        if not isinstance(spec, Mapping) or not spec:
            raise InvalidInput("$project needs a non-empty object")
        by_path = {o.path: o for o in rel.outs}
        kept: list[_Out] = []
        excluded: set[str] = set()
        for name, how in spec.items():
            _name(name, "$project")
            if isinstance(how, str) and how.startswith("$"):
                source = by_path.get(check_path(how[1:]))
                if source is None:
                    raise InvalidInput(f"$project: '{how[1:]}' is not a field of the results", field=name)
                kept.append(replace(source, path=name))
            elif how in (1, True):
                parts = [o for o in rel.outs if o.path == name or o.path.startswith(f"{name}.")]
                if not parts:
                    rel.field(name)
                kept.extend(parts)
            elif how in (0, False):
                excluded.add(name)
            else:
                raise InvalidInput(f"$project of '{name}' must be 1, 0 or a '$field' path", field=name)
        if kept and excluded - {"_id"}:
            raise InvalidInput("$project cannot both include and exclude fields (other than _id)")
        if not kept:
            kept = [o for o in rel.outs if o.path.split(".")[0] not in excluded]
        elif "_id" not in excluded and "_id" not in spec:
            kept = [o for o in rel.outs if o.path.split(".")[0] == "_id"] + kept
        rel.outs = kept

    def group(self, spec: Any) -> None:
        rel = self.rel.settled()
        rel.order = []  # groups have no order of their own (no $first/$last to need one)
        if not isinstance(spec, Mapping) or "_id" not in spec:
            raise InvalidInput("$group needs an '_id': a field path such as '$model.id', or null")
        n = self.groups
        self.groups += 1
        columns: list[ColumnElement[Any]] = []
        outs: list[_Out] = []
        grouped: list[str] = []

        def add(path: str, expr: ColumnElement[Any], kind: Kind, key: bool = False) -> None:
            label = f"g{n}_{len(columns)}"
            columns.append(expr.label(label))
            outs.append(_Out(path, label, kind))
            if key:
                grouped.append(label)

        key_spec = spec["_id"]
        if isinstance(key_spec, Mapping) and not any(str(k).startswith("$") for k in key_spec):
            if not key_spec:
                raise InvalidInput("$group: '_id' is an empty object")
            for name, part in key_spec.items():
                path = f"_id.{_name(name, '$group _id')}"
                expr, kind, constant = _expression(rel, part, path)
                add(path, expr, kind, key=not constant)
        else:
            expr, kind, constant = _expression(rel, key_spec, "_id")
            add("_id", expr, kind, key=not constant)
        for name, accumulator in spec.items():
            if name != "_id":
                expr, kind = _accumulator(rel, _name(name, "$group"), accumulator)
                add(name, expr, kind)
        stmt = rel.statement(columns)
        # GROUP BY the output labels: the same expression, written once, however complex.
        stmt = stmt.group_by(*grouped) if grouped else stmt.having(func.count() > 0)
        self.rel = _Relation(stmt.subquery(), outs, {o.label: o.kind for o in outs})

    def count(self, name: Any) -> None:
        name = _name(name, "$count")
        self.group({"_id": None, name: {"$sum": 1}})
        assert self.rel.outs is not None
        self.rel.outs = [o for o in self.rel.outs if o.path == name]


def _expression(rel: _Relation, spec: Any, where: str) -> tuple[ColumnElement[Any], Kind, bool]:
    """A group key: ``"$path"``, ``{"$dateTrunc": ...}`` or a constant; and whether it is constant."""
    if isinstance(spec, str) and spec.startswith("$"):
        expr, kind = rel.field(check_path(spec[1:])).value()
        return expr, kind, False
    if isinstance(spec, Mapping):
        if set(spec) == {"$dateTrunc"}:
            return *_date_trunc(rel, spec["$dateTrunc"], where), False
        raise InvalidInput(
            f"{where}: unsupported expression {', '.join(map(str, spec))} "
            "(use a '$field' path, $dateTrunc or a constant)"
        )
    if spec is None:
        return cast(null(), String), "text", True
    if isinstance(spec, bool):
        return literal(spec), "bool", True
    if isinstance(spec, int | float):
        return literal(fits(where, spec)), "number", True
    if isinstance(spec, str):
        return literal(spec, String), "text", True
    raise InvalidInput(f"{where}: unsupported value {spec!r}")


def _date_trunc(rel: _Relation, spec: Any, where: str) -> tuple[ColumnElement[Any], Kind]:
    date = spec.get("date") if isinstance(spec, Mapping) else None
    if not isinstance(spec, Mapping) or not isinstance(date, str) or not date.startswith("$"):
        raise InvalidInput(f'{where}: $dateTrunc needs {{"date": "$timestamp", "unit": "day"}}')
    unknown = set(spec) - {"date", "unit", "binSize", "startOfWeek", "timezone"}
    if unknown:
        raise InvalidInput(f"{where}: $dateTrunc does not take {', '.join(sorted(unknown))}")
    expr, kind = rel.field(check_path(date[1:])).value()
    if kind != "time":
        raise InvalidInput(f"{where}: $dateTrunc needs a date field such as '$timestamp'")
    unit = spec.get("unit")
    if unit not in _UNIT_US:
        raise InvalidInput(f"{where}: $dateTrunc unit must be one of {', '.join(_UNIT_US)} (got {unit!r})")
    if spec.get("timezone", "UTC") not in ("UTC", "Etc/UTC", "+00:00", "Z"):
        raise InvalidInput(f"{where}: $dateTrunc works in UTC only")
    size = _UNIT_US[unit] * _count(spec.get("binSize", 1), "$dateTrunc binSize", 1)
    if size >= 2**63:
        raise InvalidInput(f"{where}: $dateTrunc binSize is too large", field="$dateTrunc")
    offset = 0
    if unit == "week":
        start = str(spec.get("startOfWeek", "sunday")).lower()
        if start[:3] not in {d[:3] for d in _WEEK_START}:
            raise InvalidInput(f"{where}: $dateTrunc startOfWeek {start!r} is not a day of the week")
        offset = next(v for d, v in _WEEK_START.items() if d[:3] == start[:3]) * _UNIT_US["day"]
    # Microseconds: bucketing is integer arithmetic, the same on every database.
    return expr - (expr - offset) % size, "time"


def _accumulator(rel: _Relation, name: str, spec: Any) -> tuple[ColumnElement[Any], Kind]:
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise InvalidInput(
            f'$group field \'{name}\' needs one accumulator, like {{"$sum": "$usage.totalTokens"}}',
            field=name,
        )
    op, arg = next(iter(spec.items()))
    if op == "$count":
        if arg not in ({}, None):
            raise InvalidInput(f"$group field '{name}': $count takes {{}}", field=name)
        return func.count(), "number"
    if op not in ("$sum", "$avg", "$min", "$max"):
        raise InvalidInput(
            f"unknown accumulator '{op}' in $group field '{name}' "
            "(supported: $sum, $avg, $min, $max, $count)",
            field=name,
        )
    if op == "$sum" and isinstance(arg, int | float) and not isinstance(arg, bool):
        return (func.count() if arg == 1 else func.count() * fits(name, arg)), "number"
    if not isinstance(arg, str) or not arg.startswith("$"):
        raise InvalidInput(
            f"$group field '{name}': {op} needs a '$field' path" + (" or a number" if op == "$sum" else ""),
            field=name,
        )
    source = rel.field(check_path(arg[1:]))
    if op == "$sum":
        return func.coalesce(func.sum(source.number()), 0), "number"
    if op == "$avg":
        return func.avg(source.number()), "number"
    expr, kind = source.value()
    if kind == "json":
        expr, kind = source.number(), "number"
    elif kind == "bool":
        expr, kind = cast(expr, Integer), "number"
    return (func.min(expr) if op == "$min" else func.max(expr)), kind


def _plain(value: Any, kind: Kind) -> Any:
    """A result value as JSON carries it: numbers as int or float, dates as ISO 8601 text."""
    if value is None:
        return None
    if kind == "time":
        return iso(int(value))
    if isinstance(value, Decimal):  # PostgreSQL's SUM/AVG of integers
        exponent = value.as_tuple().exponent
        return int(value) if isinstance(exponent, int) and exponent >= 0 else float(value)
    if kind == "bool":
        return bool(value)
    return value


@dataclass(frozen=True, slots=True)
class CompiledAggregate:
    """A pipeline as one SELECT, and how to turn its rows into results."""

    statement: Select[Any]
    outs: tuple[_Out, ...] | None  # None: the rows are records (their JSON body)

    def results(self, result: CursorResult[Any]) -> list[dict[str, Any]]:
        if self.outs is None:
            return [row.body for row in result]
        docs: list[dict[str, Any]] = []
        for row in result:
            doc: dict[str, Any] = {}
            for out in self.outs:
                head, _, sub = out.path.partition(".")
                value = _plain(row._mapping[out.label], out.kind)
                if sub:
                    doc.setdefault(head, {})[sub] = value
                else:
                    doc[head] = value
            docs.append(doc)
        return docs


_STAGES = {
    "$match": _Pipeline.match,
    "$sort": _Pipeline.sort,
    "$skip": _Pipeline.skip,
    "$limit": _Pipeline.take,
    "$group": _Pipeline.group,
    "$project": _Pipeline.project,
    "$count": _Pipeline.count,
}


def compile_aggregate(
    pipeline: Any, project_id: int, *, environment: str | None = None, cap: int | None = None
) -> CompiledAggregate:
    """Compile a MongoDB-style ``pipeline`` over one project's generations (and one environment).

    ``cap`` bounds the rows the statement returns. Raises InvalidInput naming an unknown stage,
    accumulator, operator or field.
    """
    if not isinstance(pipeline, list):
        raise InvalidInput("a pipeline must be a list of stages")
    if len(pipeline) > _MAX_STAGES:
        raise InvalidInput(f"a pipeline has at most {_MAX_STAGES} stages")
    check_no_nul(pipeline, "pipeline")
    gens = t.generations
    scope = [gens.c.project_id == project_id]
    if environment is not None:
        scope.append(gens.c.environment == environment)
    state = _Pipeline(_Relation(gens, None, where=scope))
    for i, stage in enumerate(pipeline):
        if not isinstance(stage, Mapping) or len(stage) != 1:
            raise InvalidInput(f'stage {i} must be an object with one key, like {{"$match": {{...}}}}')
        name, spec = next(iter(stage.items()))
        run = _STAGES.get(name)
        if run is None:
            raise InvalidInput(f"unknown stage '{name}' (supported: {', '.join(_STAGES)})")
        run(state, spec)
    rel = state.rel
    if rel.outs is None:
        return CompiledAggregate(rel.statement([rel.source.c.id, rel.source.c.body], cap), None)
    labels = list(dict.fromkeys(o.label for o in rel.outs))
    return CompiledAggregate(rel.statement([rel.source.c[label] for label in labels], cap), tuple(rel.outs))


def aggregate(
    conn: Connection,
    project_id: int,
    pipeline: Any,
    *,
    environment: str | None = None,
    max_results: int = 10_000,
) -> list[dict[str, Any]]:
    """Run a pipeline; see :func:`compile_aggregate`. More than ``max_results`` results is InvalidInput."""
    compiled = compile_aggregate(pipeline, project_id, environment=environment, cap=max_results + 1)
    docs = compiled.results(conn.execute(compiled.statement))
    if len(docs) > max_results:
        raise InvalidInput(f"the pipeline returns more than {max_results} results; add a $limit stage")
    return docs
