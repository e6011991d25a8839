"""The built-in pipeline functions: text, JSON, lists, numbers and dates.

Each is a plain Python function with typed parameters and ``@returns``, so pipelines that chain them are
checked when saved and converted when run (see :mod:`sightline.pipelines.convert`). They run in the
server's own process (no sandbox: they are ours), so each bounds what it makes: no built-in can turn a
small input into a huge output or a long computation. Regular expressions run in RE2 (linear time).

A function becomes usable in pipelines once an admin's sync registers it (``sightline functions sync``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import re2

from .convert import returns

MAX_TEXT = 1_000_000  # characters a built-in may make


def _bounded(text: str) -> str:
    if len(text) > MAX_TEXT:
        raise ValueError(f"the result would be longer than {MAX_TEXT} characters")
    return text


# --- text ---------------------------------------------------------------------------------------------


@returns("str")
def upper(text: str) -> str:
    """The text in upper case."""
    return text.upper()


@returns("str")
def lower(text: str) -> str:
    """The text in lower case."""
    return text.lower()


@returns("str")
def strip(text: str) -> str:
    """The text without white space at either end."""
    return text.strip()


@returns("str")
def concat(a: str, b: str, separator: str = "") -> str:
    """``a`` and ``b`` one after the other (with ``separator`` between them)."""
    return _bounded(f"{a}{separator}{b}")


@returns("str")
def builtin_concat(a: str, b: str) -> str:
    """``a`` and ``b`` on two lines (the name the source document's examples use)."""
    return _bounded(f"{a}\n{b}")


@returns("str")
def join(items: list, separator: str = ", ") -> str:  # type: ignore[type-arg]
    """The items of a list as one text, ``separator`` between them."""
    return _bounded(separator.join(str(item) for item in items))


@returns("list")
def split(text: str, separator: str = ",", limit: int = -1) -> list[str]:
    """The parts of ``text`` between ``separator`` (at most ``limit`` splits; -1: all), each stripped."""
    if not separator:
        raise ValueError("separator: may not be empty")
    return [part.strip() for part in text.split(separator, limit)]


@returns("str")
def replace(text: str, old: str, new: str) -> str:
    """``text`` with every ``old`` replaced by ``new``."""
    if not old:
        raise ValueError("old: may not be empty")
    if new and len(new) > len(old) and text.count(old) * (len(new) - len(old)) + len(text) > MAX_TEXT:
        raise ValueError(f"the result would be longer than {MAX_TEXT} characters")
    return text.replace(old, new)


@returns("str")
def truncate(text: str, length: int, ellipsis: str = "…") -> str:
    """``text`` cut to at most ``length`` characters, ending with ``ellipsis`` when it was cut."""
    if length < 0:
        raise ValueError("length: may not be negative")
    if len(text) <= length:
        return text
    return text[: max(0, length - len(ellipsis))] + ellipsis[:length]


@returns("str")
def regex_extract(text: str, pattern: str, group: int = 0) -> str:
    """The first match of ``pattern`` (RE2 syntax) in ``text``, or group ``group`` of it; "" when none."""
    try:
        compiled = re2.compile(pattern)
    except re2.error as error:
        raise ValueError(f"pattern: {error}") from None
    match = compiled.search(text)
    if match is None:
        return ""
    return match.group(group) or ""


@returns("int")
def length(value: Any) -> int:
    """How many characters a text, or items a list or dict, holds."""
    if isinstance(value, str | list | dict):
        return len(value)
    raise ValueError("value: expected text, a list or a dict")


@returns("str")
def builtin_hi(buddy: str) -> str:
    """A greeting (the source document's example)."""
    return f"Hi, {buddy}"


# --- JSON ---------------------------------------------------------------------------------------------


@returns("json")
def json_parse(text: str) -> Any:
    """The JSON value ``text`` holds."""
    return json.loads(text)


@returns("json")
def json_get(value: Any, path: str, default: Any = None) -> Any:
    """The value at ``path`` (keys and list indexes joined by dots, e.g. ``choices.0.text``) in a JSON
    value or JSON text; ``default`` when there is none."""
    if isinstance(value, str):
        value = json.loads(value)
    for part in path.split(".") if path else []:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            return default
    return value


@returns("str")
def json_dump(value: Any, indent: int = 0) -> str:
    """A JSON value as JSON text (``indent`` spaces a level; 0: one line)."""
    if not 0 <= indent <= 8:
        raise ValueError("indent: from 0 to 8")
    return _bounded(json.dumps(value, ensure_ascii=False, indent=indent or None))


# --- lists --------------------------------------------------------------------------------------------


@returns("json")
def first(items: list) -> Any:  # type: ignore[type-arg]
    """The first item of a list (None when it is empty)."""
    return items[0] if items else None


@returns("json")
def last(items: list) -> Any:  # type: ignore[type-arg]
    """The last item of a list (None when it is empty)."""
    return items[-1] if items else None


# --- numbers ------------------------------------------------------------------------------------------


@returns("float")
def add(a: float, b: float) -> float:
    """``a + b``."""
    return a + b


@returns("float")
def subtract(a: float, b: float) -> float:
    """``a - b``."""
    return a - b


@returns("float")
def multiply(a: float, b: float) -> float:
    """``a × b``."""
    return a * b


@returns("float")
def divide(a: float, b: float) -> float:
    """``a / b`` (an error when ``b`` is 0)."""
    if b == 0:
        raise ValueError("b: division by zero")
    return a / b


@returns("float")
def round_number(value: float, digits: int = 0) -> float:
    """``value`` rounded to ``digits`` decimals."""
    if not -15 <= digits <= 15:
        raise ValueError("digits: from -15 to 15")
    return round(value, digits)


@returns("int")
def to_int(value: int) -> int:
    """A value as a whole number (text such as "42" or "42.0" too)."""
    return value


@returns("float")
def to_float(value: float) -> float:
    """A value as a number (text such as "4.2" too)."""
    return value


# --- dates --------------------------------------------------------------------------------------------


@returns("str")
def now(tz: str = "UTC") -> str:
    """The current time in time zone ``tz`` (an IANA name such as ``Europe/Paris``), as ISO 8601 text."""
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"tz: {tz[:60]!r} is not a known time zone") from None
    return datetime.now(zone).isoformat()


BUILTINS: dict[str, Callable[..., Any]] = {
    fn.__name__: fn
    for fn in (
        upper,
        lower,
        strip,
        concat,
        builtin_concat,
        join,
        split,
        replace,
        truncate,
        regex_extract,
        length,
        builtin_hi,
        json_parse,
        json_get,
        json_dump,
        first,
        last,
        add,
        subtract,
        multiply,
        divide,
        round_number,
        to_int,
        to_float,
        now,
    )
}
