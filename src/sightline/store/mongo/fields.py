"""Field paths of generation records, resolved to what the database compares: the one place that
knows where each part of a record is kept.

- the paths in ``COLUMNS`` (``model.id``, ``timestamp``, ``usage.totalTokens``, …): their indexed
  column (:class:`ColumnField`), with the value checked against the column's kind (text, number,
  boolean, date);
- ``scores.<name>``: the latest score of that name (:class:`ScoreField`, ``score_latest``; its value,
  or its label when compared with a string);
- ``metadata.<key>``: the ``generation_metadata`` rows (:class:`MetadataField`, ``EXISTS``), compared
  as text; ``metadata.tags`` matches one tag per row (:class:`TagsField`);
- any other path: the JSON record in ``body`` (:class:`JsonField`), compared only with values of the
  same JSON type, the same way on SQLite and PostgreSQL.

``mongo.filter`` compiles filters and sorts over these fields, ``mongo.aggregate`` pipelines.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from sqlalchemy import (
    Boolean,
    ColumnElement,
    FromClause,
    String,
    case,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from ...errors import InvalidInput
from ...schema import Generation, metadata_value_text, normalize_metadata
from .. import tables as t
from ..generations.records import to_us

__all__ = [
    "COLUMNS",
    "ColumnField",
    "Field",
    "JsonField",
    "Kind",
    "MetadataField",
    "Resolver",
    "ScoreField",
    "TagsField",
    "check_known",
    "check_path",
    "describe",
    "doc_field",
    "fits",
    "score_field",
    "time_value",
    "unknown_part",
]

Kind = Literal["text", "number", "bool", "time", "json"]

# Wire paths held in a column of ``generations``: (column, kind).
COLUMNS: dict[str, tuple[str, Kind]] = {
    "id": ("id", "text"),
    "timestamp": ("ts_us", "time"),
    "environment": ("environment", "text"),
    "model.id": ("model_id", "text"),
    "model.provider": ("provider", "text"),
    "metadata.userId": ("user_id", "text"),
    "userId": ("user_id", "text"),
    "metadata.sessionId": ("session_id", "text"),
    "runId": ("run_id", "text"),
    "chatId": ("chat_id", "text"),
    "stepIndex": ("step_index", "number"),
    "template.name": ("template_name", "text"),
    "template.version": ("template_version", "text"),
    "status": ("status", "text"),
    "error.type": ("error_type", "text"),
    "cacheHit": ("cache_hit", "bool"),
    "output.type": ("output_type", "text"),
    "usage.promptTokens": ("prompt_tokens", "number"),
    "usage.completionTokens": ("completion_tokens", "number"),
    "usage.totalTokens": ("total_tokens", "number"),
    "usage.cost": ("cost", "number"),
    "usage.costSaved": ("cost_saved", "number"),
    "performance.latency": ("latency_ms", "number"),
    "performance.timeToFirstToken": ("ttft_ms", "number"),
    "feedback.rating": ("feedback_rating", "number"),
    "feedback.score": ("feedback_score", "number"),
    "feedback.thumbs": ("feedback_thumbs", "text"),
}

_PATH = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
# A custom metadata key may hold any character but NUL.
_METADATA_PATH = re.compile(r"metadata\.[^\x00]+")
_MAX_PATH = 400
_MAX_META_VALUE = 1000  # records.metadata_rows indexes a value by its first 1000 characters
_MAX_TAG_KEY = 200  # ... and a tag by its first 200 characters of "tags:<tag>"
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def check_path(path: Any) -> str:
    """``path`` if it is a field path (letters, digits, ``_``, ``-`` separated by dots), else InvalidInput."""
    if (
        not isinstance(path, str)
        or len(path) > _MAX_PATH
        or not (_PATH.fullmatch(path) or _METADATA_PATH.fullmatch(path))
    ):
        raise InvalidInput(
            f"invalid field path {path!r}: use dotted names of letters, digits, '_' and '-'", field=str(path)
        )
    return path


def describe(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def time_value(path: str, value: Any) -> int:
    """An ISO 8601 string, a datetime or ``{"$date": ...}`` as microseconds since the epoch."""
    if isinstance(value, Mapping) and set(value) == {"$date"}:
        value = value["$date"]
    if isinstance(value, datetime):
        return to_us(value)
    if isinstance(value, str):
        try:
            return to_us(datetime.fromisoformat(value))
        except ValueError:
            pass
    raise InvalidInput(f"'{path}' is a date: {value!r} is not an ISO 8601 date", field=path)


def fits(path: str, value: int | float) -> int | float:
    """A number both databases can bind (SQLite refuses integers past 64 bits)."""
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        raise InvalidInput(f"'{path}': the number {value} is too large", field=path)
    return value


def _coerce(path: str, kind: Kind, value: Any) -> Any:
    """``value`` as the column of ``kind`` holds it, or InvalidInput naming the field."""
    if kind == "time":
        return time_value(path, value)
    if kind == "text" and isinstance(value, str):
        return value
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return fits(path, value)
    if kind == "bool" and isinstance(value, bool):
        return value
    expected = {"text": "a string", "number": "a number", "bool": "true or false"}.get(kind, "a scalar")
    raise InvalidInput(f"'{path}' is compared with {expected}, not {describe(value)}", field=path)


def _compare(expr: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op == "in":
        return expr.in_(value)  # type: ignore[no-any-return]
    if op == "regex":
        return expr.regexp_match(value)  # type: ignore[no-any-return]
    return _COMPARE[op](expr, value)  # type: ignore[no-any-return]


class Field(Protocol):
    """One field path, resolved against a source of rows."""

    @property
    def path(self) -> str: ...

    def compare(self, op: str, value: Any) -> ColumnElement[bool]:
        """``field <op> value`` (op: eq, gt, gte, lt, lte, in [value is a list], regex); NULL or false
        where the field is missing."""
        ...

    def present(self) -> ColumnElement[bool]:
        """Whether the record has this field (``$exists``)."""
        ...

    def missing(self) -> ColumnElement[bool]:
        """Whether the field is absent or null (``{"f": null}``)."""
        ...

    def value(self) -> tuple[ColumnElement[Any], Kind]:
        """An expression of the field's value, to group, sort and take the min/max of."""
        ...

    def number(self) -> ColumnElement[Any]:
        """A numeric expression of the field, to sum and average (NULL where it is not a number)."""
        ...


Resolver = Callable[[str], Field]


@dataclass(frozen=True, slots=True)
class ColumnField:
    """A field held in a column (of ``generations``, or of a ``$group`` result)."""

    path: str
    expr: ColumnElement[Any]
    kind: Kind
    nullable: bool = True

    def compare(self, op: str, value: Any) -> ColumnElement[bool]:
        if op == "regex":
            if self.kind != "text":
                raise InvalidInput(f"$regex needs a text field; '{self.path}' is not text", field=self.path)
        elif op == "in":
            value = [_coerce(self.path, self.kind, v) for v in value]
        else:
            value = _coerce(self.path, self.kind, value)
        return _compare(self.expr, op, value)

    def present(self) -> ColumnElement[bool]:
        return self.expr.is_not(None) if self.nullable else true()

    def missing(self) -> ColumnElement[bool]:
        return self.expr.is_(None) if self.nullable else false()

    def value(self) -> tuple[ColumnElement[Any], Kind]:
        return self.expr, self.kind

    def number(self) -> ColumnElement[Any]:
        if self.kind == "number":
            return self.expr
        if self.kind == "bool":
            return case((self.expr, 1), else_=0)
        raise InvalidInput(f"'{self.path}' is not a number", field=self.path)


class _JsonKind(FunctionElement[str]):
    """The JSON type of ``doc[path]``: string, number, boolean, object, array, null; NULL when absent.

    SQLite and PostgreSQL name JSON types differently; this is the one place that knows both.
    """

    type = String()
    name = "json_kind"
    inherit_cache = True


@compiles(_JsonKind, "postgresql")
def _json_kind_postgresql(element: _JsonKind, compiler: SQLCompiler, **kw: Any) -> str:
    item = list(element.clauses)[0]  # doc #> path
    return f"jsonb_typeof({compiler.process(item, **kw)})"


@compiles(_JsonKind, "sqlite")
def _json_kind_sqlite(element: _JsonKind, compiler: SQLCompiler, **kw: Any) -> str:
    item: Any = list(element.clauses)[0]  # JSON_QUOTE(JSON_EXTRACT(doc, path)): take its doc and path
    doc, path = compiler.process(item.left, **kw), compiler.process(item.right, **kw)
    return (
        f"CASE json_type({doc}, {path}) WHEN 'integer' THEN 'number' WHEN 'real' THEN 'number' "
        "WHEN 'text' THEN 'string' WHEN 'true' THEN 'boolean' WHEN 'false' THEN 'boolean' "
        "WHEN 'object' THEN 'object' WHEN 'array' THEN 'array' WHEN 'null' THEN 'null' END"
    )


@dataclass(frozen=True, slots=True)
class JsonField:
    """A path inside the JSON record ``body``: compared only with values of the same JSON type."""

    path: str
    doc: ColumnElement[Any]
    keys: tuple[str | int, ...]

    def _item(self) -> Any:
        return self.doc[self.keys]

    def _kind(self) -> ColumnElement[str]:
        return _JsonKind(self._item())

    def _typed(self, value: Any) -> tuple[str, Any]:
        """The JSON type of ``value``, and the field as that type (NULL where it is another type)."""
        item = self._item()
        if isinstance(value, bool):
            kind, typed = "boolean", item.as_boolean()
        elif isinstance(value, int | float):
            kind, typed = "number", item.as_float()
            fits(self.path, value)
        elif isinstance(value, str):
            kind, typed = "string", item.as_string()
        else:
            raise InvalidInput(
                f"'{self.path}' is compared with a string, number or boolean, not {describe(value)}",
                field=self.path,
            )
        # CASE first checks the type: PostgreSQL would fail casting a string to a number.
        return kind, case((self._kind() == kind, typed))

    def compare(self, op: str, value: Any) -> ColumnElement[bool]:
        if op == "in":
            groups: dict[str, tuple[Any, list[Any]]] = {}
            for v in value:
                kind, typed = self._typed(v)
                groups.setdefault(kind, (typed, []))[1].append(v)
            cond = or_(false(), *(typed.in_(vs) for typed, vs in groups.values()))
        elif op == "regex":
            cond = _compare(self._typed("")[1], op, value)
        else:
            cond = _compare(self._typed(value)[1], op, value)
        return func.coalesce(cond, false(), type_=Boolean)

    def present(self) -> ColumnElement[bool]:
        return self._kind().is_not(None)

    def missing(self) -> ColumnElement[bool]:
        kind = self._kind()
        return or_(kind.is_(None), kind == "null")

    def value(self) -> tuple[ColumnElement[Any], Kind]:
        return self._item(), "json"

    def number(self) -> ColumnElement[Any]:
        return self._typed(0)[1]  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class _MetadataRows:
    """Shared by custom metadata and tags: EXISTS over the record's ``generation_metadata`` rows."""

    path: str
    source: FromClause

    def _exists(self, *conds: ColumnElement[bool]) -> ColumnElement[bool]:
        gm = t.generation_metadata
        return exists().where(
            gm.c.generation_id == self.source.c.id, gm.c.project_id == self.source.c.project_id, *conds
        )

    def missing(self) -> ColumnElement[bool]:
        return not_(self.present())

    def present(self) -> ColumnElement[bool]:  # overridden: which rows show the field is there
        return self._exists()

    def number(self) -> ColumnElement[Any]:
        raise InvalidInput(f"'{self.path}' is not a number (metadata values are text)", field=self.path)


@dataclass(frozen=True, slots=True)
class MetadataField(_MetadataRows):
    """A custom ``metadata.<key>``, matched against its text (a url's address, 'true'/'false', …)."""

    key: str

    def _text(self, value: Any) -> str:
        try:
            typed = normalize_metadata({self.key: value}).get(self.key)
        except ValueError as exc:
            raise InvalidInput(f"'{self.path}': {exc}", field=self.path) from None
        if typed is None:
            raise InvalidInput(f"'{self.path}' is compared with a string, not null", field=self.path)
        return metadata_value_text(typed)[:_MAX_META_VALUE]

    def compare(self, op: str, value: Any) -> ColumnElement[bool]:
        gm_value = t.generation_metadata.c.value
        if op == "in":
            value = [self._text(v) for v in value]
        elif op != "regex":
            if op != "eq" and not isinstance(value, str):
                raise InvalidInput(f"'{self.path}' is text: compare it with a string", field=self.path)
            value = self._text(value)
        return self._exists(t.generation_metadata.c.key == self.key, _compare(gm_value, op, value))

    def present(self) -> ColumnElement[bool]:
        return self._exists(t.generation_metadata.c.key == self.key)

    def value(self) -> tuple[ColumnElement[Any], Kind]:
        gm = t.generation_metadata
        query = select(gm.c.value).where(
            gm.c.generation_id == self.source.c.id,
            gm.c.project_id == self.source.c.project_id,
            gm.c.key == self.key,
        )
        return query.scalar_subquery(), "text"


@dataclass(frozen=True, slots=True)
class TagsField(_MetadataRows):
    """``metadata.tags``: ``{"metadata.tags": "x"}`` matches records tagged x."""

    def _key(self, tag: Any) -> str:
        if not isinstance(tag, str):
            raise InvalidInput(f"'{self.path}' holds strings, not {describe(tag)}", field=self.path)
        return f"tags:{tag}"[:_MAX_TAG_KEY]

    def compare(self, op: str, value: Any) -> ColumnElement[bool]:
        key = t.generation_metadata.c.key
        if op == "eq":
            return self._exists(key == self._key(value))
        if op == "in":
            return self._exists(key.in_([self._key(v) for v in value]))
        raise InvalidInput(f"'{self.path}' supports $eq, $ne, $in, $nin, $all and $exists", field=self.path)

    def present(self) -> ColumnElement[bool]:
        return self._exists(t.generation_metadata.c.key.startswith("tags:", autoescape=True))

    def value(self) -> tuple[ColumnElement[Any], Kind]:
        raise InvalidInput(f"'{self.path}' is a list: it cannot be grouped or sorted by", field=self.path)


@dataclass(frozen=True, slots=True)
class ScoreField:
    """``scores.<name>``: the latest score of that name on the record (``score_latest``). Compared
    with a number it is the score's value, with a string its label; ``scores.<name>.value`` and
    ``scores.<name>.label`` name one of them."""

    path: str
    source: FromClause
    name: str
    part: Literal["any", "value", "label"] = "any"

    def _exists(self, *conds: ColumnElement[bool]) -> ColumnElement[bool]:
        sl = t.score_latest
        return exists().where(
            sl.c.project_id == self.source.c.project_id,
            sl.c.generation_id == self.source.c.id,
            sl.c.name == self.name,
            *conds,
        )

    def _column(self, value: Any) -> tuple[ColumnElement[Any], Kind]:
        sl = t.score_latest
        if self.part == "label" or self.part == "any" and isinstance(value, str):
            return sl.c.label, "text"
        return sl.c.value, "number"

    def compare(self, op: str, value: Any) -> ColumnElement[bool]:
        if op == "regex":
            if self.part == "value":
                raise InvalidInput(f"$regex needs a text field; '{self.path}' is a number", field=self.path)
            return self._exists(_compare(t.score_latest.c.label, op, value))
        if op == "in":
            groups: dict[str, tuple[ColumnElement[Any], list[Any]]] = {}
            for v in value:
                column, kind = self._column(v)
                groups.setdefault(kind, (column, []))[1].append(_coerce(self.path, kind, v))
            return self._exists(or_(false(), *(column.in_(vs) for column, vs in groups.values())))
        column, kind = self._column(value)
        return self._exists(_compare(column, op, _coerce(self.path, kind, value)))

    def present(self) -> ColumnElement[bool]:
        sl = t.score_latest
        if self.part == "any":
            return self._exists()
        return self._exists((sl.c.label if self.part == "label" else sl.c.value).is_not(None))

    def missing(self) -> ColumnElement[bool]:
        return not_(self.present())

    def value(self) -> tuple[ColumnElement[Any], Kind]:
        sl = t.score_latest
        column: ColumnElement[Any] = sl.c.label if self.part == "label" else sl.c.value
        query = select(column).where(
            sl.c.project_id == self.source.c.project_id,
            sl.c.generation_id == self.source.c.id,
            sl.c.name == self.name,
        )
        return query.scalar_subquery(), "text" if self.part == "label" else "number"

    def number(self) -> ColumnElement[Any]:
        if self.part == "label":
            raise InvalidInput(f"'{self.path}' is a label, not a number", field=self.path)
        return self.value()[0]


def score_field(source: FromClause, path: str, rest: str) -> ScoreField:
    """The field ``scores.<rest>`` of the records in ``source``."""
    name, _, part = rest.rpartition(".")
    if name and part in ("value", "label"):
        return ScoreField(path, source, name, part)  # type: ignore[arg-type]
    if len(rest) > 100:
        raise InvalidInput(f"'{path}': a score's name has at most 100 characters", field=path)
    return ScoreField(path, source, rest)


@functools.cache
def _record_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    schema = Generation.model_json_schema(by_alias=True, mode="serialization")
    schema["properties"]["environment"] = {"type": "string"}  # added to every record when it is read
    return schema, schema.get("$defs", {})


def unknown_part(path: str) -> str | None:
    """The start of ``path`` that no generation record can have (``colour``, ``model.colour``), or None.

    Read off the wire schema: a part is unknown where the object holding it has a fixed set of fields
    (``model``, ``usage``, …); inside open objects (``metadata``, ``parameters``, message lists) any
    name may be there.
    """
    node, defs = _record_schema()
    parts = path.split(".")
    for i, part in enumerate(parts):
        while True:
            if "$ref" in node:
                node = defs.get(node["$ref"].rsplit("/", 1)[-1], {})
            elif "anyOf" in node:
                objects = [v for v in node["anyOf"] if v.get("type") != "null"]
                if len(objects) != 1:
                    return None
                node = objects[0]
            else:
                break
        properties = node.get("properties")
        if properties is None or part not in properties and node.get("additionalProperties") is not False:
            return None
        if part not in properties:
            return ".".join(parts[: i + 1])
        node = properties[part]
    return None


def check_known(path: str) -> str:
    """``path`` if a generation record can hold it, else InvalidInput naming the unknown part."""
    unknown = unknown_part(check_path(path))
    if unknown is not None:
        raise InvalidInput(
            f"unknown field '{unknown}' (in '{path}'): a generation has no such field", field=path
        )
    return path


# MongoDB's operators, which export filters may also write without their '$' (``{"gte": ...}``).
def doc_field(source: FromClause, path: str) -> Field:
    """The field ``path`` of the generation records in ``source`` (``generations`` or a subquery of it)."""
    check_path(path)
    if path in COLUMNS:
        name, kind = COLUMNS[path]
        return ColumnField(path, source.c[name], kind, bool(t.generations.c[name].nullable))
    head, _, rest = path.partition(".")
    if head == "feedback":
        raise InvalidInput(
            f"'{path}': only feedback.rating, feedback.score and feedback.thumbs can be queried", field=path
        )
    if head == "scores" and rest and _PATH.fullmatch(rest):
        return score_field(source, path, rest)
    if head == "metadata" and rest:
        key, _, sub = rest.partition(".")
        if key == "tags" and not sub:
            return TagsField(path, source)
        if not sub or sub in ("value", "url"):
            return MetadataField(path, source, key)
        if sub not in ("type", "text"):
            # A custom value has no parts but these: a dotted rest names one key ("a.b"), as the
            # list filter's metadata.<key> and the metadata rows do.
            return MetadataField(path, source, rest)
    if not _PATH.fullmatch(path):  # a JSON path: plain names only (they are written into it)
        raise InvalidInput(
            f"invalid field path {path!r}: use dotted names of letters, digits, '_' and '-'", field=path
        )
    check_known(path)
    keys = tuple(int(p) if p.isdigit() else p for p in path.split("."))
    return JsonField(path, source.c.body, keys)
