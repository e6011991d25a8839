"""Conversions between steps, the built-ins, finding custom functions and running them in a sandbox."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from sightline.pipelines import builtins as b
from sightline.pipelines.convert import ConversionError, can_convert, convert, returns
from sightline.pipelines.loader import FunctionRefused, builtin_functions, discover_custom, signature_of
from sightline.pipelines.sandbox import FunctionFailed, FunctionTimeout, Sandbox


@pytest.mark.parametrize(
    ("value", "to", "expected"),
    [
        ("42", "int", 42),
        ("42.0", "int", 42),
        (3.0, "int", 3),
        (True, "int", 1),
        ("4.5", "float", 4.5),
        (7, "float", 7.0),
        ("yes", "bool", True),
        ("0", "bool", False),
        (0, "bool", False),
        ("[1, 2]", "list", [1, 2]),
        ('{"a": 1}', "dict", {"a": 1}),
        ({"a": 1}, "str", '{"a": 1}'),
        (False, "str", "false"),
        (None, "str", ""),
        (2.5, "str", "2.5"),
        ('{"a": [1]}', "json", {"a": [1]}),
        ("not json", "json", "not json"),
        ([1], None, [1]),
    ],
)
def test_values_convert_to_what_the_next_step_takes(value: Any, to: str, expected: Any) -> None:
    assert convert(value, to) == expected


@pytest.mark.parametrize(
    ("value", "to"),
    [("abc", "int"), (3.5, "int"), ("maybe", "bool"), ("[1]", "dict"), ({"a": 1}, "int"), ("nan", "float")],
)
def test_a_value_that_cannot_convert_says_so(value: Any, to: str) -> None:
    with pytest.raises(ConversionError, match=f"cannot become {to}|not a whole|not true|JSON object|finite"):
        convert(value, to)


def test_declared_types_that_can_never_meet_are_known_when_saved() -> None:
    assert can_convert("str", "int") and can_convert("int", "str") and can_convert(None, "dict")
    assert (
        not can_convert("dict", "int") and not can_convert("list", "dict") and not can_convert("int", "list")
    )


def test_the_builtins() -> None:
    assert b.upper("abc") == "ABC" and b.lower("ABC") == "abc" and b.strip("  x ") == "x"  # noqa: B005 (our built-in)
    assert b.concat("a", "b", "-") == "a-b" and b.builtin_concat("a", "b") == "a\nb"
    assert b.join([1, "x"], "+") == "1+x" and b.split("a, b,c") == ["a", "b", "c"]
    assert b.replace("aXa", "a", "b") == "bXb" and b.truncate("abcdef", 4) == "abc…"
    assert b.truncate("abc", 4) == "abc" and b.regex_extract("order 1234 shipped", r"(\d+)", 1) == "1234"
    assert b.regex_extract("none", r"\d+") == "" and b.length([1, 2]) == 2 and b.length("abc") == 3
    assert b.json_parse('{"a": [1, 2]}') == {"a": [1, 2]}
    assert b.json_get('{"choices": [{"text": "hi"}]}', "choices.0.text") == "hi"
    assert b.json_get({"a": 1}, "b.c", "none") == "none" and b.json_dump({"a": 1}) == '{"a": 1}'
    assert b.first([1, 2]) == 1 and b.last([1, 2]) == 2 and b.first([]) is None
    assert b.add(1, 2) == 3 and b.multiply(2, 3) == 6 and b.round_number(2.345, 2) == 2.35
    assert b.now("Europe/Paris").endswith(("+01:00", "+02:00")) and "T" in b.now()
    assert b.builtin_hi("Bob") == "Hi, Bob"
    with pytest.raises(ValueError, match="tz"):
        b.now("Mars/Olympus")
    with pytest.raises(ValueError, match="longer than"):
        b.replace("a" * 1000, "a", "b" * 2000)
    with pytest.raises(ValueError, match="pattern"):
        b.regex_extract("x", "(a")
    # RE2: a pattern that backtracks for ages in Python's re is linear here.
    started = time.perf_counter()
    assert b.regex_extract("a" * 5000 + "!", r"^(a+)+$") == ""
    assert time.perf_counter() - started < 5


def test_every_builtin_has_a_signature_a_type_and_a_docstring() -> None:
    found = builtin_functions()
    assert {"upper", "json_get", "now", "builtin_concat", "regex_extract"} <= set(found)
    for info in found.values():
        assert info.doc and info.signature.returns, info.name
    assert [p.name for p in found["concat"].signature.params] == ["a", "b", "separator"]
    assert [p.required for p in found["concat"].signature.params] == [True, True, False]


def test_functions_with_star_args_or_kwargs_are_refused() -> None:
    def many(*args: Any) -> None: ...

    def named(**kwargs: Any) -> None: ...

    for fn in (many, named):
        with pytest.raises(FunctionRefused, match="functions with \\*args or \\*\\*kwargs cannot be used"):
            signature_of(fn)

    @returns("int")
    def typed(a: int, b: str = "x"):  # type: ignore[no-untyped-def]
        return a

    sig = signature_of(typed)
    assert sig.returns == "int" and [(p.name, p.type, p.required) for p in sig.params] == [
        ("a", "int", True),
        ("b", "str", False),
    ]


CUSTOM = '''
import json
from os import path  # imported: not a pipeline function
from sightline.pipelines.convert import returns

_helper = 1

def _private(x):
    return x

@returns("str")
def shout(text: str) -> str:
    """Loud."""
    return text.upper() + "!"

def add_one(n: int) -> int:
    return n + 1

def everything(*args):
    return args

def hang(x):
    while True:
        pass

def die(x):
    import os
    os._exit(3)

def fail(x):
    raise RuntimeError("it broke")

def not_json(x):
    return object()
'''


def test_custom_files_give_their_own_functions_and_list_what_failed(tmp_path: Path) -> None:
    (tmp_path / "custom_tools.py").write_text(CUSTOM)
    (tmp_path / "custom_broken.py").write_text("def ok(x):\n    return x\nraise ValueError('bad import')\n")
    (tmp_path / "other.py").write_text("def ignored(x):\n    return x\n")
    found, errors = discover_custom(tmp_path)
    assert set(found) == {"shout", "add_one", "hang", "die", "fail", "not_json"}
    assert found["shout"].source == "custom_tools.py" and found["shout"].doc == "Loud."
    assert found["add_one"].signature.returns == "int"
    messages = {e["file"]: e["message"] for e in errors}
    assert messages["custom_broken.py"] == "ValueError: bad import (line 3)"
    assert "everything" in messages["custom_tools.py"] and "*args" in messages["custom_tools.py"]


def test_a_sandboxed_function_that_hangs_crashes_or_fails_costs_only_its_call(tmp_path: Path) -> None:
    file = tmp_path / "custom_tools.py"
    file.write_text(CUSTOM)

    async def scenario() -> None:
        sandbox = Sandbox(workers=1)
        try:
            assert await sandbox.call(str(file), "shout", ["hi"], {}, 10) == "HI!"
            with pytest.raises(FunctionTimeout, match="within 0.5 s"):
                await sandbox.call(str(file), "hang", [1], {}, 0.5)
            assert await sandbox.call(str(file), "add_one", [], {"n": 1}, 10) == 2
            with pytest.raises(FunctionFailed, match="died"):
                await sandbox.call(str(file), "die", [1], {}, 10)
            with pytest.raises(FunctionFailed, match="RuntimeError: it broke"):
                await sandbox.call(str(file), "fail", [1], {}, 10)
            with pytest.raises(FunctionFailed, match="not JSON"):
                await sandbox.call(str(file), "not_json", [1], {}, 10)
            assert await sandbox.call(str(file), "shout", ["again"], {}, 10) == "AGAIN!"
            found, errors = await sandbox.discover(tmp_path, 20)
            assert "shout" in found and errors
        finally:
            sandbox.close()

    asyncio.run(scenario())
