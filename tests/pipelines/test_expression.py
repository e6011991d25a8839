"""The pipeline expression language: the source document's expressions parse, hostile ones are refused with
their place, random text never crashes the parser or runs anything."""

from __future__ import annotations

import builtins
import contextlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sightline.pipelines.expression import (
    Call,
    Const,
    ExpressionError,
    Name,
    Param,
    Signature,
    args_of,
    check,
    parse,
)

# The prompts and functions of the source document's examples.
SIGNATURES = {
    "foo": Signature("function", (Param("bar", None, True), Param("fred", None, True)), "str"),
    "bar": Signature("function", (Param("x", None, True),), None),
    "fred": Signature(
        "function", (Param("a", "int", True), Param("b", "int", True), Param("c", "int", True)), "int"
    ),
    "prompt_buddy": Signature("prompt", (Param("buddy", "str", True),), "str"),
    "p1": Signature("prompt", (Param("a1", "str", True),), "str"),
    "builtin_hi": Signature("function", (Param("buddy", None, True),), "str"),
    "builtin_concat": Signature("function", (Param("a", "str", True), Param("b", "str", True)), "str"),
    "prompt_a": Signature("prompt", (Param("a", "str", True),), "str"),
    "prompt_b": Signature("prompt", (Param("b", "str", True),), "str"),
    "two": Signature("prompt", (Param("x", "str", True), Param("y", "str", True)), "str"),
    "as_dict": Signature("function", (), "dict"),
    "wants_int": Signature("function", (Param("n", "int", True),), "int"),
}
SIGNATURES["foo1"] = Signature("function", (Param("x", None, True),), "str")


@pytest.mark.parametrize(
    ("text", "arguments"),
    [
        ("foo1(bar(fred(1, 2, 3)))", []),
        ("prompt_buddy(buddy)", ["buddy"]),
        ("prompt_buddy(buddy=buddy_arg)", ["buddy_arg"]),
        ("prompt_buddy(dude)", ["dude"]),
        ("p1(p1(p1(arg)))", ["arg"]),
        ("p1(a1=p1(a1=p1(a1=arg)))", ["arg"]),
        ("builtin_hi(buddy=buddy_arg)", ["buddy_arg"]),
        ("builtin_hi(buddy)", ["buddy"]),
        ("builtin_concat(prompt_a(a_arg), prompt_b(b_arg))", ["a_arg", "b_arg"]),
        ("foo", ["foo"]),
        ("two(x=a, y='constant')", ["a"]),
        ("  p1(\n  arg\n)  ", ["arg"]),
        ("wants_int(-3)", []),
    ],
)
def test_the_documents_expressions_are_valid(text: str, arguments: list[str]) -> None:
    assert check(parse(text), SIGNATURES.get) == arguments


def test_the_tree_is_calls_names_and_constants() -> None:
    tree = parse("foo(bar(fred(1, 2, 3)), fred='x')")
    assert isinstance(tree, Call) and tree.name == "foo"
    inner = tree.args[0]
    assert isinstance(inner, Call) and inner.name == "bar"
    assert isinstance(inner.args[0], Call) and [
        a.value for a in inner.args[0].args if isinstance(a, Const)
    ] == [1, 2, 3]
    assert tree.kwargs[0][0] == "fred" and tree.kwargs[0][1] == Const("x", 1, 30)
    assert parse("foo") == Name("foo", 1, 1)
    assert args_of(parse("f(a, g(b, a), c=d)")) == ["a", "b", "d"]


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("", 1, 1),
        ("   ", 1, 1),
        ("x(", 1, 2),
        ("x)", 1, 2),
        ("()", 1, 1),
        ("(x)", 1, 1),
        ("x y", 1, 3),
        ("x=1", 1, 2),
        ("x.y()", 1, 1),
        ("__import__('os')", 1, 1),
        ("foo(x)[0]", 1, 1),
        ("foo(x) + 1", 1, 1),
        ("foo(*args)", 1, 5),
        ("foo(**kw)", 1, 5),
        ("lambda: 1", 1, 1),
        ("[x for x in y]", 1, 1),
        ("f'{x}'", 1, 1),
        ("foo(x)(y)", 1, 1),
        ("foo(b'x')", 1, 5),
        ("foo(_private)", 1, 5),
        ("foo(\n  x.y)", 2, 3),
        ("(x := 1)", 1, 2),
        ("foo(1j)", 1, 5),
        ("'a' 'b'", 1, 1),
    ],
)
def test_what_is_not_in_the_grammar_is_refused_with_its_place(text: str, line: int, column: int) -> None:
    with pytest.raises(ExpressionError) as refused:
        parse(text)
    assert (refused.value.line, refused.value.column) == (line, column), str(refused.value)
    assert f"line {line}, column {column}" in str(refused.value)


def test_deep_or_long_expressions_are_refused_before_the_parser_recurses() -> None:
    with pytest.raises(ExpressionError, match="nested deeper than 32"):
        parse("f(" * 1000 + "x" + ")" * 1000)
    with pytest.raises(ExpressionError, match="longer than"):
        parse("f(" + "x, " * 5000 + "x)")
    assert check(parse("p1(" * 30 + "x" + ")" * 30), SIGNATURES.get) == ["x"]


@pytest.mark.parametrize(
    ("text", "message", "name", "column"),
    [
        ("nope(x)", "'nope' is not a prompt or a registered function", "nope", 1),
        ("p1(nope(x))", "'nope' is not a prompt", "nope", 4),
        ("two(a, b)", "several arguments (x, y): pass them by name", "two", 1),
        ("two(x=a)", "missing argument(s): y", "two", 1),
        ("p1(a1=x, zz=y)", "has no argument 'zz'", "p1", 13),
        ("p1(x, a1=y)", "got argument 'a1' twice", "p1", 10),
        ("p1(x, y)", "takes at most 1 argument(s), 2 given", "p1", 1),
        ("wants_int(as_dict())", "takes int, and dict cannot become one", "wants_int", 11),
        ("fred(1, 2)", "missing argument(s): c", "fred", 1),
    ],
)
def test_a_call_that_does_not_fit_its_callee_is_refused_naming_it(
    text: str, message: str, name: str, column: int
) -> None:
    with pytest.raises(ExpressionError) as refused:
        check(parse(text), SIGNATURES.get)
    assert message in refused.value.message and refused.value.name == name
    assert refused.value.column == column


_TOKENS = st.sampled_from(
    ["f", "g", "x", "(", ")", ",", "=", "1", "'s'", ".", "[", "]", "*", "**", "+", " ", "\n", "__import__",
     "lambda", ":", "os", "system", "'rm -rf /'", "__class__", "eval", "exec", "{", "}", "-", "if", "else"]
)  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=st.one_of(st.text(max_size=80), st.lists(_TOKENS, max_size=30).map("".join)))
def test_random_text_never_crashes_the_parser_nor_runs_anything(text: str) -> None:
    called: list[str] = []
    originals = {name: getattr(builtins, name) for name in ("eval", "exec", "__import__", "compile")}

    def spy(name: str) -> Any:
        def inner(*args: Any, **kwargs: Any) -> Any:
            called.append(name)
            return originals[name](*args, **kwargs)

        return inner

    for name in ("eval", "exec"):
        setattr(builtins, name, spy(name))
    try:
        try:
            tree = parse(text)
        except ExpressionError:
            return
        with contextlib.suppress(ExpressionError):
            check(tree, SIGNATURES.get)
    finally:
        for name in ("eval", "exec"):
            setattr(builtins, name, originals[name])
    assert not called
