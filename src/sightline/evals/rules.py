"""Rule evaluators: judgements that need no model, checked when defined and run in microseconds.

``check_rule(type, config)`` validates a rule's configuration (every mistake an
:class:`~sightline.errors.InvalidInput` naming ``config.<key>``) and answers the compiled rule; the
rule's ``evaluate(sample)`` scores one generation: 1 labelled ``pass`` or 0 labelled ``fail``, or a
"not applicable" outcome (no value, no label: nothing is recorded) when the generation lacks what the
rule looks at (a threshold on a cost that is unknown, an equality with no reference answer).

Regular expressions (``regex``, and a JSON Schema's ``pattern``) run on RE2, in linear time.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jsonschema
import orjson
import re2
from jsonschema.exceptions import SchemaError

from ..errors import InvalidInput
from ..store.engine.connection import linear_regex

__all__ = ["RULE_TYPES", "Outcome", "Rule", "Sample", "check_rule"]

RULE_TYPES = ("json_valid", "json_schema", "regex", "contains", "length", "threshold", "equals")
_MAX_PATTERN = 2000
_MAX_SCHEMA = 100_000  # bytes of a JSON Schema's text


@dataclass(frozen=True, slots=True)
class Outcome:
    """A rule's judgement: ``value`` 1 or 0 and ``label`` pass or fail; both None when the rule does
    not apply to the generation (then ``comment`` says why)."""

    value: float | None
    label: str | None
    comment: str | None = None

    @property
    def applies(self) -> bool:
        return self.value is not None or self.label is not None


@dataclass(frozen=True, slots=True)
class Sample:
    """What a rule looks at, taken from a generation record (``evals.evaluator.sample_of``)."""

    output: str
    input: str = ""
    reference: str | None = None
    latency_ms: float | None = None
    cost: float | None = None
    total_tokens: int | None = None


class Rule(Protocol):
    def evaluate(self, sample: Sample) -> Outcome: ...


def _verdict(ok: bool, why: str | None = None) -> Outcome:
    return Outcome(1.0, "pass", None) if ok else Outcome(0.0, "fail", why[:500] if why else None)


def _quote(text: str) -> str:
    return repr(text if len(text) <= 100 else text[:99] + "…")


class _Config:
    """A rule's config, read key by key; what is left unread at the end is an unknown key."""

    def __init__(self, config: Any) -> None:
        if not isinstance(config, Mapping):
            raise InvalidInput("config: expected an object", field="config")
        self._left = dict(config)

    def _take(self, key: str) -> Any:
        return self._left.pop(key, None)

    def flag(self, key: str, default: bool) -> bool:
        value = self._take(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise InvalidInput(f"config.{key}: expected true or false", field=f"config.{key}")
        return value

    def number(self, key: str, *, whole: bool = False, low: float | None = None) -> float | None:
        value = self._take(key)
        if value is None:
            return None
        kinds = (int,) if whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or value != value:
            expected = "a whole number" if whole else "a number"
            raise InvalidInput(f"config.{key}: expected {expected}", field=f"config.{key}")
        if low is not None and value < low:
            raise InvalidInput(f"config.{key}: must be at least {low:g}", field=f"config.{key}")
        return float(value)

    def text(self, key: str, *, required: bool = False, limit: int = 20_000) -> str | None:
        value = self._take(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value or len(value) > limit:
            raise InvalidInput(
                f"config.{key}: expected a text of 1 to {limit} characters", field=f"config.{key}"
            )
        return value

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        value = self._take(key)
        if value is None:
            return choices[0]
        if value not in choices:
            raise InvalidInput(f"config.{key}: expected one of {', '.join(choices)}", field=f"config.{key}")
        return str(value)

    def take(self, key: str) -> Any:
        return self._take(key)

    def done(self) -> None:
        for key in self._left:
            raise InvalidInput(f"config.{key}: unknown setting of this rule", field=f"config.{key}")


def unfenced(text: str) -> str:
    """``text`` without a surrounding Markdown code fence (```` ```json ... ``` ````), in linear time
    (a model's output decides the input: no backtracking pattern)."""
    inner = text.strip()
    if not inner.startswith("```") or not inner.endswith("```") or len(inner) < 6:
        return text
    first_line_end = inner.find("\n")
    if first_line_end < 0:
        return text
    language = inner[3:first_line_end].strip()
    if language and not all(c.isalnum() or c in "_-" for c in language):
        return text
    return inner[first_line_end + 1 : -3]


def _parse_json(text: str, strip_fences: bool) -> tuple[bool, Any, str | None]:
    if strip_fences:
        text = unfenced(text)
    try:
        return True, orjson.loads(text), None
    except orjson.JSONDecodeError as exc:
        return False, None, f"output is not valid JSON: {str(exc)[:200]}"


@dataclass(frozen=True, slots=True)
class JsonValid:
    strip_fences: bool

    def evaluate(self, sample: Sample) -> Outcome:
        ok, _, why = _parse_json(sample.output, self.strip_fences)
        return _verdict(ok, why)


def _re2_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if isinstance(instance, str) and not linear_regex(pattern).search(instance):
        yield jsonschema.ValidationError(f"{_quote(instance)} does not match {pattern!r}")


def _re2_pattern_properties(validator: Any, patterns: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if not isinstance(instance, dict):
        return
    for pattern, subschema in patterns.items():
        compiled = linear_regex(pattern)
        for key, value in instance.items():
            if compiled.search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _check_patterns(node: Any) -> None:
    """Every ``pattern`` and ``patternProperties`` key of a schema compiles in RE2 (else InvalidInput)."""
    if isinstance(node, dict):
        for key, value in node.items():
            patterns = [value] if key == "pattern" and isinstance(value, str) else []
            if key == "patternProperties" and isinstance(value, dict):
                patterns = list(value)
            for pattern in patterns:
                try:
                    linear_regex(pattern)
                except re2.error:
                    raise InvalidInput(
                        f"config.schema: the pattern {_quote(pattern)} is not one RE2 runs "
                        "(linear time: no backreferences or lookaround)",
                        field="config.schema",
                    ) from None
            _check_patterns(value)
    elif isinstance(node, list):
        for item in node:
            _check_patterns(item)


@dataclass(frozen=True, slots=True)
class JsonSchema:
    validator: Any

    def evaluate(self, sample: Sample) -> Outcome:
        ok, value, why = _parse_json(sample.output, True)
        if not ok:
            return _verdict(False, why)
        error = jsonschema.exceptions.best_match(self.validator.iter_errors(value))
        if error is None:
            return _verdict(True)
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        # Said without the failing value (jsonschema's message quotes it whole: the output's text).
        return _verdict(False, f"at {where[:100]}: fails the schema's {error.validator!r} rule")


def _json_schema(config: _Config) -> JsonSchema:
    schema = config.take("schema")
    if not isinstance(schema, dict | bool):
        raise InvalidInput("config.schema: expected a JSON Schema (an object)", field="config.schema")
    if len(orjson.dumps(schema)) > _MAX_SCHEMA:
        raise InvalidInput(f"config.schema: larger than {_MAX_SCHEMA} bytes", field="config.schema")
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        raise InvalidInput(
            f"config.schema: not a valid JSON Schema: {exc.message[:300]}", field="config.schema"
        ) from None
    _check_patterns(schema)
    linear = jsonschema.validators.extend(
        cls, {"pattern": _re2_pattern, "patternProperties": _re2_pattern_properties}
    )
    return JsonSchema(linear(schema))


@dataclass(frozen=True, slots=True)
class Regex:
    pattern: Any
    must_match: bool

    def evaluate(self, sample: Sample) -> Outcome:
        found = self.pattern.search(sample.output) is not None
        if found == self.must_match:
            return _verdict(True)
        return _verdict(False, "the output does not match" if self.must_match else "the output matches")


def _regex(config: _Config) -> Regex:
    pattern = config.text("pattern", required=True, limit=_MAX_PATTERN)
    assert pattern is not None
    must_match = config.flag("mustMatch", True)
    if config.flag("ignoreCase", False):
        pattern = f"(?i){pattern}"
    try:
        compiled = linear_regex(pattern)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise InvalidInput(
            f"config.pattern: {reason} (patterns run in linear time: no backreferences or lookaround)",
            field="config.pattern",
        ) from None
    return Regex(compiled, must_match)


@dataclass(frozen=True, slots=True)
class Contains:
    values: tuple[str, ...]
    mode: str
    ignore_case: bool

    def evaluate(self, sample: Sample) -> Outcome:
        text = sample.output.casefold() if self.ignore_case else sample.output
        found = [v for v in self.values if v in text]
        if self.mode == "all":
            missing = [v for v in self.values if v not in found]
            return _verdict(not missing, f"missing {', '.join(_quote(v) for v in missing[:5])}")
        if self.mode == "any":
            return _verdict(bool(found), "contains none of the values")
        return _verdict(not found, f"contains {', '.join(_quote(v) for v in found[:5])}")


def _contains(config: _Config) -> Contains:
    values = config.take("values")
    if (
        not isinstance(values, list)
        or not 1 <= len(values) <= 100
        or not all(isinstance(v, str) and v and len(v) <= 1000 for v in values)
    ):
        raise InvalidInput(
            "config.values: expected a list of 1 to 100 non-empty texts", field="config.values"
        )
    mode = config.choice("mode", ("all", "any", "none"))
    ignore_case = config.flag("ignoreCase", False)
    return Contains(tuple(v.casefold() if ignore_case else v for v in values), mode, ignore_case)


def _bounds(config: _Config, whole: bool, low: float | None) -> tuple[float | None, float | None]:
    least, most = config.number("min", whole=whole, low=low), config.number("max", whole=whole, low=low)
    if least is None and most is None:
        raise InvalidInput("config.min: give min, max or both", field="config.min")
    if least is not None and most is not None and least > most:
        raise InvalidInput("config.max: must not be below min", field="config.max")
    return least, most


def _within(measured: float, least: float | None, most: float | None, what: str) -> Outcome:
    if least is not None and measured < least:
        return _verdict(False, f"{what} {measured:g} is below {least:g}")
    if most is not None and measured > most:
        return _verdict(False, f"{what} {measured:g} is above {most:g}")
    return _verdict(True)


@dataclass(frozen=True, slots=True)
class Length:
    least: float | None
    most: float | None
    unit: str

    def evaluate(self, sample: Sample) -> Outcome:
        size = len(sample.output.split()) if self.unit == "words" else len(sample.output)
        return _within(size, self.least, self.most, f"length in {self.unit}")


def _length(config: _Config) -> Length:
    least, most = _bounds(config, True, 0)
    return Length(least, most, config.choice("unit", ("characters", "words")))


_MEASURES: dict[str, Callable[[Sample], float | None]] = {
    "latency": lambda s: s.latency_ms,
    "cost": lambda s: s.cost,
    "totalTokens": lambda s: None if s.total_tokens is None else float(s.total_tokens),
}


@dataclass(frozen=True, slots=True)
class Threshold:
    field: str
    least: float | None
    most: float | None

    def evaluate(self, sample: Sample) -> Outcome:
        measured = _MEASURES[self.field](sample)
        if measured is None:
            return Outcome(None, None, f"no {self.field} on this generation")
        return _within(measured, self.least, self.most, self.field)


def _threshold(config: _Config) -> Threshold:
    field = config.take("field")
    if field not in _MEASURES:
        raise InvalidInput(f"config.field: expected one of {', '.join(_MEASURES)}", field="config.field")
    least, most = _bounds(config, False, None)
    return Threshold(str(field), least, most)


_SPACES = re.compile(r"\s+")


def normalized(text: str) -> str:
    """``text`` as ``equals`` compares it when normalised: NFKC, case-folded, spaces collapsed,
    trailing ``.!?`` dropped."""
    text = _SPACES.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()
    return text.rstrip(".!?").rstrip()


@dataclass(frozen=True, slots=True)
class Equals:
    mode: str
    reference: str | None

    def evaluate(self, sample: Sample) -> Outcome:
        reference = self.reference if self.reference is not None else sample.reference
        if reference is None:
            return Outcome(None, None, "no reference answer")
        if self.mode == "exact":
            same = sample.output == reference
        else:
            same = normalized(sample.output) == normalized(reference)
        return _verdict(same, f"expected {_quote(reference)}")


def _equals(config: _Config) -> Equals:
    mode = config.choice("mode", ("normalized", "exact"))
    reference = config.take("reference")
    if reference is not None and not isinstance(reference, str):
        raise InvalidInput("config.reference: expected a text", field="config.reference")
    return Equals(mode, reference)


def _json_valid(config: _Config) -> JsonValid:
    return JsonValid(config.flag("stripFences", True))


_BUILDERS: dict[str, Callable[[_Config], Rule]] = {
    "json_valid": _json_valid,
    "json_schema": _json_schema,
    "regex": _regex,
    "contains": _contains,
    "length": _length,
    "threshold": _threshold,
    "equals": _equals,
}


def check_rule(type: str, config: Any) -> Rule:
    """The rule of ``type`` with ``config``, checked; InvalidInput naming ``type`` or ``config.<key>``."""
    builder = _BUILDERS.get(type)
    if builder is None:
        raise InvalidInput(f"type: expected one of {', '.join(RULE_TYPES)}", field="type")
    settings = _Config(config)
    rule = builder(settings)
    settings.done()
    return rule
