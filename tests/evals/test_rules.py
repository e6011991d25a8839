"""Rule evaluators: each passing and failing, not applying, and every bad config refused by name."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sightline.errors import InvalidInput
from sightline.evals.rules import Sample, check_rule


def verdict(type: str, config: dict[str, Any], output: str, **sample: Any) -> str | None:
    return check_rule(type, config).evaluate(Sample(output=output, **sample)).label


def test_json_valid_with_and_without_a_fence() -> None:
    assert verdict("json_valid", {}, '{"a": 1}') == "pass"
    assert verdict("json_valid", {}, '```json\n{"a": 1}\n```') == "pass"
    assert verdict("json_valid", {"stripFences": False}, '```json\n{"a": 1}\n```') == "fail"
    outcome = check_rule("json_valid", {}).evaluate(Sample(output="nope"))
    assert (outcome.value, outcome.label) == (0.0, "fail") and "not valid JSON" in (outcome.comment or "")


def test_a_fence_is_stripped_in_linear_time() -> None:
    assert verdict("json_valid", {}, "```" + "\n" * 50_000 + "x") == "fail"  # returns at once
    assert verdict("json_valid", {}, "```\n[1, 2]\n```") == "pass"


def test_a_schema_failure_does_not_quote_the_output() -> None:
    outcome = check_rule("json_schema", {"schema": {"type": "integer"}}).evaluate(
        Sample(output='"' + "x" * 1000 + '"')
    )
    assert (
        outcome.label == "fail" and len(outcome.comment or "") < 120 and "xxxx" not in (outcome.comment or "")
    )


def test_json_schema_says_where_it_fails() -> None:
    schema = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}}
    assert verdict("json_schema", {"schema": schema}, '{"answer": "yes"}') == "pass"
    outcome = check_rule("json_schema", {"schema": schema}).evaluate(Sample(output='{"answer": 3}'))
    assert outcome.label == "fail" and "answer" in (outcome.comment or "")


def test_a_schema_pattern_runs_in_linear_time() -> None:
    schema = {"type": "string", "pattern": "^(a+)+$"}
    rule = check_rule("json_schema", {"schema": schema})
    assert rule.evaluate(Sample(output='"' + "a" * 5000 + '!"')).label == "fail"  # returns at once
    assert rule.evaluate(Sample(output='"aaaa"')).label == "pass"


def test_regex_contains_length() -> None:
    assert verdict("regex", {"pattern": r"\d{3}"}, "call 555 now") == "pass"
    assert verdict("regex", {"pattern": r"\d{3}", "mustMatch": False}, "call 555 now") == "fail"
    assert verdict("regex", {"pattern": "HELLO", "ignoreCase": True}, "hello") == "pass"
    assert verdict("regex", {"pattern": "^(a+)+$"}, "a" * 5000 + "!") == "fail"  # at once: RE2
    assert verdict("contains", {"values": ["a", "b"]}, "a b") == "pass"
    assert verdict("contains", {"values": ["a", "z"]}, "a b") == "fail"
    assert verdict("contains", {"values": ["a", "z"], "mode": "any"}, "a b") == "pass"
    assert verdict("contains", {"values": ["SORRY"], "mode": "none", "ignoreCase": True}, "sorry!") == "fail"
    assert verdict("length", {"max": 5}, "123456") == "fail"
    assert verdict("length", {"min": 2, "max": 3, "unit": "words"}, "two words") == "pass"


def test_threshold_and_equals_may_not_apply() -> None:
    assert verdict("threshold", {"field": "latency", "max": 1000}, "", latency_ms=400.0) == "pass"
    assert verdict("threshold", {"field": "cost", "max": 0.01}, "", cost=0.5) == "fail"
    missing = check_rule("threshold", {"field": "cost", "max": 1}).evaluate(Sample(output=""))
    assert not missing.applies and "cost" in (missing.comment or "")
    assert verdict("equals", {}, "  Paris. ", reference="paris") == "pass"
    assert verdict("equals", {"mode": "exact"}, "Paris.", reference="Paris") == "fail"
    assert verdict("equals", {"reference": "ｆｕｌｌ width"}, "full WIDTH") == "pass"  # NFKC
    assert not check_rule("equals", {}).evaluate(Sample(output="x")).applies


@given(st.text(alphabet=st.characters(codec="ascii", categories=("L", "N")), min_size=1, max_size=40))
def test_normalized_equality_ignores_case_and_spaces(text: str) -> None:
    assert verdict("equals", {"reference": text}, f"  {text.upper()}  ") == "pass"


@pytest.mark.parametrize(
    "type, config, field",
    [
        ("colour", {}, "type"),
        ("regex", {"pattern": "(a"}, "config.pattern"),
        ("regex", {"pattern": r"(a)\1"}, "config.pattern"),  # a backreference: not linear
        ("regex", {}, "config.pattern"),
        ("regex", {"pattern": "a", "mustMatch": 1}, "config.mustMatch"),
        ("json_schema", {"schema": {"type": "colour"}}, "config.schema"),
        ("json_schema", {"schema": {"pattern": "(?=a)"}}, "config.schema"),
        ("json_schema", {}, "config.schema"),
        ("contains", {"values": []}, "config.values"),
        ("contains", {"values": ["a"], "mode": "most"}, "config.mode"),
        ("length", {}, "config.min"),
        ("length", {"min": 5, "max": 2}, "config.max"),
        ("length", {"min": 1.5}, "config.min"),
        ("threshold", {"field": "mood", "max": 1}, "config.field"),
        ("threshold", {"field": "cost", "max": True}, "config.max"),
        ("equals", {"reference": 3}, "config.reference"),
        ("json_valid", {"colour": 1}, "config.colour"),
        ("json_valid", [], "config"),
    ],
)
def test_bad_configs_are_refused_naming_the_key(type: str, config: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_rule(type, config)
    assert refused.value.field == field
