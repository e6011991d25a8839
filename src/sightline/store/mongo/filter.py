"""MongoDB-style filters and sorts over generation records, compiled to one SQL condition.

A filter such as ``{"model.id": "gpt-4", "usage.totalTokens": {"$gte": 100}}`` becomes a
SQLAlchemy condition the database evaluates. Each field path is looked up by ``mongo.fields`` (an
indexed column, the latest score of a name, the metadata rows, or the JSON record); this module
compiles the operators (``$eq`` … ``$regex``, ``$and``/``$or``/``$nor``/``$not``) and sorts over them.

``{"$text": {"$search": "words \"a phrase\" prefix*"}}`` is a free-text search of the records'
prompts, outputs, template names and metadata values (``generations/search.py``), ANDed with the
rest of the filter; as in MongoDB it stands at the top of a filter or inside ``$and``/``$or``.

As in MongoDB, a missing field matches ``{"$ne": x}``, ``{"$nin": [...]}`` and ``{"f": null}``.
A comparison with a column is the plain SQL one (``model_id = ?``: what the indexes serve), which is
NULL where the column is; that reads as false in a WHERE, and every negation (``$ne``, ``$nin``,
``$not``, ``$nor``) first turns NULL into false, so a missing field matches the negation. A compiled
condition is therefore for a WHERE (or a ``coalesce(..., false)``), where NULL means false.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import re2
from sqlalchemy import (
    Boolean,
    ColumnElement,
    and_,
    false,
    func,
    not_,
    or_,
    true,
)

from ...errors import InvalidInput
from .. import tables as t
from ..engine.connection import linear_regex
from ..generations.search import Planned, text_condition
from .fields import ColumnField, Field, JsonField, MetadataField, Resolver, check_path, describe, doc_field

__all__ = [
    "check_no_nul",
    "compile_filter",
    "compile_where",
    "order_by",
    "text_search",
    "with_dollars",
]

_MAX_DEPTH = 20
_REGEX_OPTIONS = frozenset("ix")  # MongoDB's options that mean the same on both databases
_MAX_REGEX = 2000
_RANGE = {"$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}


_OPERATORS = frozenset(
    ["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "all", "exists", "regex", "options", "not"]
)
_LOGICAL = frozenset(["and", "or", "nor"])


def with_dollars(filter: Any) -> Any:
    """``filter`` with the operators written without ``$`` given theirs: ``{"timestamp": {"gte": t}}``
    becomes ``{"timestamp": {"$gte": t}}``. An object is taken as operators only when every one of its
    keys is an operator's name; anything else is left for the compiler to judge."""
    if not isinstance(filter, Mapping):
        return filter
    out: dict[Any, Any] = {}
    for key, spec in filter.items():
        if key in _LOGICAL and isinstance(spec, list):
            out[f"${key}"] = [with_dollars(part) for part in spec]
        elif isinstance(key, str) and key.lstrip("$") in _LOGICAL and isinstance(spec, list):
            out[key] = [with_dollars(part) for part in spec]
        else:
            out[key] = _operator_dollars(spec)
    return out


def _operator_dollars(spec: Any) -> Any:
    if not isinstance(spec, Mapping) or not spec:
        return spec
    if not all(isinstance(k, str) and k.lstrip("$") in _OPERATORS for k in spec):
        return spec
    out: dict[str, Any] = {}
    for key, value in spec.items():
        op = key if key.startswith("$") else f"${key}"
        out[op] = _operator_dollars(value) if op == "$not" else value
    return out


def _equal(field: Field, value: Any) -> ColumnElement[bool]:
    if value is None:
        return field.missing()
    if isinstance(value, list):
        raise InvalidInput(
            f"'{field.path}': comparing with a list is not supported (use $in or $all)", field=field.path
        )
    if isinstance(value, Mapping) and not _is_date(value) and not isinstance(field, MetadataField):
        raise InvalidInput(
            f"'{field.path}': comparing with an object is not supported; "
            "use a dotted path ('model.id') or an operator ($eq, $gt, …)",
            field=field.path,
        )
    return field.compare("eq", value)


def _one_of(field: Field, op: str, values: Any) -> ColumnElement[bool]:
    if not isinstance(values, list):
        raise InvalidInput(f"{op} at '{field.path}' needs a list, not {describe(values)}", field=field.path)
    given = [v for v in values if v is not None]
    cond = field.compare("in", given) if given else false()
    return or_(cond, field.missing()) if len(given) < len(values) else cond


def _extended(pattern: str) -> str:
    """``pattern`` without the whitespace and ``# comments`` that the ``x`` option ignores (as MongoDB
    reads it: not when escaped or inside a character class). RE2 has no ``x`` flag of its own."""
    out: list[str] = []
    i, in_class, comment = 0, False, False
    while i < len(pattern):
        char = pattern[i]
        if comment:
            comment = char != "\n"
        elif char == "\\":
            out.append(pattern[i : i + 2])
            i += 1
        elif in_class:
            in_class = char != "]"
            out.append(char)
        elif char == "[":
            in_class = True
            out.append(char)
        elif char == "#":
            comment = True
        elif not char.isspace():
            out.append(char)
        i += 1
    return "".join(out)


def _regex(field: Field, pattern: Any, options: Any) -> ColumnElement[bool]:
    if not isinstance(pattern, str):
        raise InvalidInput(f"$regex at '{field.path}' needs a string", field=field.path)
    if len(pattern) > _MAX_REGEX:
        raise InvalidInput(
            f"$regex at '{field.path}' is longer than {_MAX_REGEX} characters", field=field.path
        )
    if not isinstance(options, str) or set(options) - _REGEX_OPTIONS:
        raise InvalidInput(f"$options at '{field.path}' may only hold 'i' and 'x'", field=field.path)
    if "x" in options:
        pattern = _extended(pattern)
    if "i" in options:
        # An inline flag: SQLAlchemy drops regex flags on SQLite, and (?i) means the same to both.
        pattern = f"(?i){pattern}"
    try:
        # Patterns run in linear time: RE2's syntax on both databases (PostgreSQL's own engine runs
        # them, under the read's time budget), so no backreferences or lookaround.
        linear_regex(pattern)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise InvalidInput(
            f"$regex at '{field.path}': {reason} (patterns run in linear time: "
            "no backreferences or lookaround)",
            field=field.path,
        ) from None
    return field.compare("regex", pattern)


def _operators(field: Field, spec: Any, depth: int) -> ColumnElement[bool]:
    """The condition of one field: ``value`` (equality) or ``{"$op": value, ...}`` (all must hold)."""
    path = field.path
    if depth > _MAX_DEPTH:
        raise InvalidInput(f"the filter is nested too deeply at '{path}'", field=path)
    if not isinstance(spec, Mapping) or not any(isinstance(k, str) and k.startswith("$") for k in spec):
        return _equal(field, spec)
    if _is_date(spec):
        return _equal(field, spec)
    conds: list[ColumnElement[bool]] = []
    for op, value in spec.items():
        if not isinstance(op, str) or not op.startswith("$"):
            raise InvalidInput(f"'{path}': cannot mix operators and field names ('{op}')", field=path)
        if op == "$eq":
            conds.append(_equal(field, value))
        elif op == "$ne":
            conds.append(_negate(_equal(field, value)))
        elif op in _RANGE:
            if value is None or isinstance(value, list | Mapping) and not _is_date(value):
                raise InvalidInput(f"{op} at '{path}' needs a number, string or date", field=path)
            conds.append(field.compare(_RANGE[op], value))
        elif op == "$in":
            conds.append(_one_of(field, op, value))
        elif op == "$nin":
            conds.append(_negate(_one_of(field, op, value)))
        elif op == "$all":
            if not isinstance(value, list):
                raise InvalidInput(f"$all at '{path}' needs a list", field=path)
            conds.append(and_(*(_equal(field, v) for v in value)) if value else false())
        elif op == "$exists":
            if not isinstance(value, bool | int):
                raise InvalidInput(f"$exists at '{path}' needs true or false", field=path)
            conds.append(field.present() if value else not_(field.present()))
        elif op == "$regex":
            conds.append(_regex(field, value, spec.get("$options", "")))
        elif op == "$options":
            if "$regex" not in spec:
                raise InvalidInput(f"$options at '{path}' needs a $regex", field=path)
        elif op == "$not":
            if not isinstance(value, Mapping) or not value:
                raise InvalidInput(f"$not at '{path}' needs operators, like {{\"$gt\": 5}}", field=path)
            conds.append(_negate(_operators(field, value, depth + 1)))
        else:
            raise InvalidInput(f"unknown operator '{op}' at '{path}'", field=path)
    return _all(conds)


def _all(conds: list[ColumnElement[bool]]) -> ColumnElement[bool]:
    """``conds`` joined by AND (no AND for one: a list page's filter is built on every request)."""
    if len(conds) == 1:
        return conds[0]
    return and_(*conds) if conds else true()


def _negate(cond: ColumnElement[bool]) -> ColumnElement[bool]:
    """NOT ``cond``, where a NULL ``cond`` (a comparison with a missing field) counts as false."""
    return not_(func.coalesce(cond, false(), type_=Boolean))


def _is_date(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"$date"}


def check_no_nul(value: Any, where: str = "filter", depth: int = 0) -> None:
    """InvalidInput if any text in ``value`` holds a NUL character: no stored text can (PostgreSQL's
    text cannot hold one, and the driver refuses to send it)."""
    if depth > _MAX_DEPTH * 2:
        raise InvalidInput(f"the {where} is nested too deeply")
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidInput(f"'{where}' holds a NUL character, which no stored text can", field=where)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_no_nul(key, where, depth + 1)
            check_no_nul(item, where if depth else str(key), depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_no_nul(item, where, depth + 1)


# The condition of a ``$text`` operator's object, over the source the filter's fields are in.
TextSearch = Callable[[Any], ColumnElement[bool]]


def text_search(seq: Any) -> TextSearch:
    """The ``$text`` of filters over generation rows whose ``seq`` column is ``seq``."""

    def search(spec: Any) -> ColumnElement[bool]:
        if isinstance(spec, Planned):
            return text_condition(seq, spec.q, field="$text", plan=spec.plan)
        if not isinstance(spec, Mapping) or "$search" not in spec:
            raise InvalidInput('$text needs an object {"$search": "words to find"}', field="$text")
        unknown = set(spec) - {"$search", "$language", "$caseSensitive", "$diacriticSensitive"}
        if unknown:
            raise InvalidInput(f"$text: unknown option {sorted(unknown)[0]!r}", field="$text")
        if spec.get("$caseSensitive") or spec.get("$diacriticSensitive"):
            raise InvalidInput("$text: searches ignore case and accents", field="$text")
        return text_condition(seq, spec["$search"], field="$text")

    return search


def compile_where(
    filter: Any, resolve: Resolver, depth: int = 0, text: TextSearch | None = None
) -> ColumnElement[bool]:
    """The condition of a MongoDB-style ``filter`` whose field paths ``resolve`` looks up; ``$text``
    is compiled by ``text`` (InvalidInput without one: the rows have no search document there)."""
    if not isinstance(filter, Mapping):
        raise InvalidInput(f"a filter must be an object, not {describe(filter)}")
    if depth == 0:
        check_no_nul(filter)
    if depth > _MAX_DEPTH:
        raise InvalidInput("the filter is nested too deeply")
    conds: list[ColumnElement[bool]] = []
    for key, spec in filter.items():
        if key in ("$and", "$or", "$nor"):
            if not isinstance(spec, list) or not spec:
                raise InvalidInput(f"{key} needs a non-empty list of filters")
            parts = [compile_where(part, resolve, depth + 1, text) for part in spec]
            if key == "$and":
                conds.append(and_(*parts))
            else:
                either = or_(*parts)
                conds.append(either if key == "$or" else _negate(either))
        elif key == "$comment":
            continue
        elif key == "$text":
            if text is None:
                raise InvalidInput("$text can only search generations (not grouped results)", field="$text")
            conds.append(text(spec))
        elif isinstance(key, str) and key.startswith("$"):
            raise InvalidInput(f"unknown operator '{key}'")
        else:
            conds.append(_operators(resolve(check_path(key)), spec, depth + 1))
    return _all(conds)


def compile_filter(filter: Mapping[str, Any]) -> ColumnElement[bool]:
    """The SQL condition over ``tables.generations`` of a MongoDB-style filter on generation records.

    Raises InvalidInput, naming the operator or field, for an unknown operator, a malformed field
    path or a value of the wrong type (a string for a number, a bad date, a non-list for ``$in``).
    """
    return compile_where(
        filter, lambda path: doc_field(t.generations, path), text=text_search(t.generations.c.seq)
    )


def order_by(spec: Any, resolve: Resolver) -> list[ColumnElement[Any]]:
    """ORDER BY terms of a MongoDB-style sort ``{path: 1 | -1, ...}``; missing values sort as smallest."""
    if not isinstance(spec, Mapping) or not spec:
        raise InvalidInput("a sort must be a non-empty object of {field: 1 or -1}")
    terms: list[ColumnElement[Any]] = []
    for path, direction in spec.items():
        if direction not in (1, -1) or isinstance(direction, bool):
            raise InvalidInput(f"sort direction of '{path}' must be 1 or -1", field=str(path))
        field = resolve(check_path(path))
        # A JSON path sorts missing < numbers < strings, as MongoDB does, on both databases: first by
        # its string value (NULL for anything else), then by its number value.
        exprs = [field._typed("")[1], field.number()] if isinstance(field, JsonField) else [field.value()[0]]
        for expr in exprs:
            if isinstance(field, ColumnField) and not field.nullable:
                terms.append(expr.desc() if direction == -1 else expr.asc())
            else:
                terms.append(expr.desc().nulls_last() if direction == -1 else expr.asc().nulls_first())
    return terms
