"""The pipeline expression language: nested calls of prompts and functions, e.g. ``foo(bar(fred(1, 2, 3)))``.

An expression is parsed with Python's own parser (``ast``, never ``eval``) and then walked with a whitelist:
a call of a plain name, a name, a constant (a number, a string, ``True``/``False``/``None``) and keyword
arguments. Anything else (attributes, subscripts, operators, lambdas, comprehensions, starred arguments,
f-strings, tuples, ...) is refused with the line and column where it stands. Free names (those not called)
are the pipeline's arguments: what its execution form asks for.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import convert

MAX_LENGTH = 10_000  # characters of an expression
MAX_DEPTH = 32  # nested calls (also bounds the parser's recursion)
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


class ExpressionError(ValueError):
    """An expression that is not in the grammar, or that does not fit the prompts and functions it names.

    ``line`` and ``column`` are 1-based and point at the offending place; ``name`` is the name concerned,
    when there is one."""

    def __init__(self, message: str, line: int = 1, column: int = 1, name: str | None = None) -> None:
        super().__init__(message)
        self.message, self.line, self.column, self.name = message, line, column, name

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"type": "invalid_expression", "message": str(self), "line": self.line, "column": self.column}


@dataclass(frozen=True, slots=True)
class Const:
    value: str | int | float | bool | None
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Name:
    name: str
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Node, ...]
    kwargs: tuple[tuple[str, Node], ...]
    line: int
    column: int


Node = Const | Name | Call


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: str | None  # a convert.TYPES name, or None: anything
    required: bool


@dataclass(frozen=True, slots=True)
class Signature:
    """What a callee takes: a prompt's arguments (all text, all required) or a function's parameters."""

    kind: str  # "prompt" | "function"
    params: tuple[Param, ...]
    returns: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "params": [{"name": p.name, "type": p.type, "required": p.required} for p in self.params],
            "returns": self.returns,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Signature:
        params = tuple(Param(p["name"], p.get("type"), bool(p.get("required", True))) for p in data["params"])
        return cls(data.get("kind", "function"), params, data.get("returns"))


Resolver = Callable[[str], Signature | None]


def parse(text: Any) -> Node:
    """The tree of ``text``, or :class:`ExpressionError` saying where it leaves the grammar."""
    if not isinstance(text, str):
        raise ExpressionError("expression: expected text")
    if not text.strip():
        raise ExpressionError("expression: empty")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression: longer than {MAX_LENGTH} characters")
    if "\x00" in text:
        raise ExpressionError("expression: holds a NUL character", column=text.index("\x00") + 1)
    _check_nesting(text)
    try:
        with warnings.catch_warnings():  # "invalid decimal literal" and the like: the error says it
            warnings.simplefilter("ignore")
            tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise ExpressionError(
            f"not a valid expression ({error.msg})", error.lineno or 1, error.offset or 1
        ) from None
    except (ValueError, RecursionError, MemoryError):
        raise ExpressionError("not a valid expression") from None
    body = tree.body
    if isinstance(body, ast.Name) and _parenthesised(text.strip()):
        raise ExpressionError("a bare name may not be in parentheses", 1, 1, body.id)
    if isinstance(body, ast.Constant):
        raise ExpressionError("a pipeline is a call or a name, not a constant", *_where(body))
    return _node(body, depth=0)


def _check_nesting(text: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH before Python's parser recurses into it."""
    depth, line, column = 0, 1, 0
    for char in text:
        column += 1
        if char == "\n":
            line, column = line + 1, 0
        elif char in "([{":
            depth += 1
            if depth > MAX_DEPTH:
                raise ExpressionError(f"nested deeper than {MAX_DEPTH} calls", line, column)
        elif char in ")]}":
            depth -= 1


def _parenthesised(text: str) -> bool:
    return text.startswith("(") and text.endswith(")")


def _where(node: ast.AST) -> tuple[int, int]:
    return getattr(node, "lineno", 1), getattr(node, "col_offset", 0) + 1


def _name(identifier: str, node: ast.AST) -> str:
    if not _NAME.match(identifier):
        line, column = _where(node)
        raise ExpressionError(
            f"{identifier!r}: a name starts with a letter and holds letters, digits and '_'",
            line,
            column,
            identifier,
        )
    return identifier


def _node(node: ast.AST, depth: int) -> Node:
    line, column = _where(node)
    if depth > MAX_DEPTH:
        raise ExpressionError(f"nested deeper than {MAX_DEPTH} calls", line, column)
    if isinstance(node, ast.Name):
        return Name(_name(node.id, node), line, column)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool | int | float | str) or node.value is None:
            return Const(node.value, line, column)
        raise ExpressionError(f"a constant of type {type(node.value).__name__} is not allowed", line, column)
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
    ):
        value = node.operand.value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return Const(-value, line, column)
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            raise ExpressionError(
                "only a prompt or function named plainly may be called (no attributes, subscripts or calls)",
                *_where(node.func),
            )
        name = _name(node.func.id, node.func)
        args = []
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise ExpressionError("starred arguments (*x) are not allowed", *_where(arg), name)
            args.append(_node(arg, depth + 1))
        kwargs: list[tuple[str, Node]] = []
        for keyword in node.keywords:
            if keyword.arg is None:
                raise ExpressionError("**keyword arguments are not allowed", *_where(keyword), name)
            kwargs.append((_name(keyword.arg, keyword), _node(keyword.value, depth + 1)))
        return Call(name, tuple(args), tuple(kwargs), line, column)
    what = _DESCRIPTIONS.get(type(node), type(node).__name__.lower())
    raise ExpressionError(f"{what} is not allowed: only calls, names and constants", line, column)


_DESCRIPTIONS: dict[type, str] = {
    ast.Attribute: "attribute access (x.y)",
    ast.Subscript: "subscripts (x[y])",
    ast.BinOp: "an operator",
    ast.UnaryOp: "an operator",
    ast.BoolOp: "and/or",
    ast.Compare: "a comparison",
    ast.Lambda: "lambda",
    ast.IfExp: "if/else",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a generator",
    ast.JoinedStr: "an f-string",
    ast.Tuple: "a tuple",
    ast.List: "a list",
    ast.Dict: "a dict",
    ast.Set: "a set",
    ast.NamedExpr: "an assignment (:=)",
    ast.Await: "await",
    ast.Starred: "starred arguments",
}


def args_of(node: Node) -> list[str]:
    """The free names of ``node`` (the pipeline's arguments), in the order they first appear."""
    found: dict[str, None] = {}

    def walk(n: Node) -> None:
        if isinstance(n, Name):
            found.setdefault(n.name)
        elif isinstance(n, Call):
            for arg in n.args:
                walk(arg)
            for _, value in n.kwargs:
                walk(value)

    walk(node)
    return list(found)


def calls_of(node: Node) -> list[Call]:
    """Every call of ``node``, innermost first (the order they run in one after the other)."""
    out: list[Call] = []

    def walk(n: Node) -> None:
        if isinstance(n, Call):
            for arg in n.args:
                walk(arg)
            for _, value in n.kwargs:
                walk(value)
            out.append(n)

    walk(node)
    return out


def output_type(node: Node, resolve: Resolver) -> str | None:
    """The declared type ``node`` gives (None: unknown, anything)."""
    if isinstance(node, Const):
        return convert.type_of(node.value)
    if isinstance(node, Name):
        return None
    signature = resolve(node.name)
    return signature.returns if signature else None


def check(node: Node, resolve: Resolver) -> list[str]:
    """Check every call of ``node`` against the signature of what it names; answer the pipeline's arguments.

    A prompt with one argument takes it positionally or by its name; a prompt with several, by keyword
    only. A function takes what its parameters say. Where both sides declare a type, the value must be
    convertible (``convert.can_convert``)."""
    for call in calls_of(node):
        signature = resolve(call.name)
        if signature is None:
            raise ExpressionError(
                f"{call.name!r} is not a prompt or a registered function", call.line, call.column, call.name
            )
        _check_call(call, signature, resolve)
    return args_of(node)


def bind(call: Call, signature: Signature) -> list[tuple[Param, Node]]:
    """Each of ``call``'s arguments with the parameter it fills (checked by :func:`check`)."""
    params = signature.params
    bound: list[tuple[Param, Node]] = []
    if signature.kind == "prompt" and len(params) > 1 and call.args:
        raise ExpressionError(
            f"prompt {call.name!r} has several arguments ({', '.join(p.name for p in params)}): "
            "pass them by name, e.g. " + f"{call.name}({params[0].name}=...)",
            call.line,
            call.column,
            call.name,
        )
    if len(call.args) > len(params):
        raise ExpressionError(
            f"{call.name!r} takes at most {len(params)} argument(s), {len(call.args)} given",
            call.line,
            call.column,
            call.name,
        )
    filled: set[str] = set()
    for positional, arg in zip(params, call.args, strict=False):
        bound.append((positional, arg))
        filled.add(positional.name)
    by_name = {p.name: p for p in params}
    for key, value in call.kwargs:
        param = by_name.get(key)
        where = value.line, value.column
        if param is None:
            raise ExpressionError(f"{call.name!r} has no argument {key!r}", *where, call.name)
        if key in filled:
            raise ExpressionError(f"{call.name!r} got argument {key!r} twice", *where, call.name)
        filled.add(key)
        bound.append((param, value))
    missing = [p.name for p in params if p.required and p.name not in filled]
    if missing:
        raise ExpressionError(
            f"{call.name!r} is missing argument(s): {', '.join(missing)}", call.line, call.column, call.name
        )
    return bound


def _check_call(call: Call, signature: Signature, resolve: Resolver) -> None:
    for param, value in bind(call, signature):
        given = output_type(value, resolve)
        if not convert.can_convert(given, param.type):
            raise ExpressionError(
                f"{call.name!r} argument {param.name!r} takes {param.type}, and {given} cannot become one",
                value.line,
                value.column,
                call.name,
            )
