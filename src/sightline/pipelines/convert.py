"""How one step's output becomes the next step's input.

A function declares what it gives with ``@returns("int")`` (or its return annotation) and what it takes
with its parameters' annotations. When a pipeline is saved, every link is checked with
:func:`can_convert`; when it runs, every value is passed through :func:`convert`.

=========  ============================================================================================
to         from
=========  ============================================================================================
``str``    anything: text as is, numbers and booleans written plainly, lists and dicts as JSON
``int``    an int; a float with no fraction; a bool (0/1); text holding a whole number
``float``  an int or float; text holding a number
``bool``   a bool; a number (0 is false); text ``true``/``false``/``yes``/``no``/``1``/``0``
``list``   a list; text holding a JSON array
``dict``   a dict; text holding a JSON object
``json``   any JSON value; text is parsed as JSON when it is JSON, else kept as text
=========  ============================================================================================

A prompt takes text (``str``) and gives text. Types that can never meet (a ``dict`` where an ``int`` is
wanted) are refused when the pipeline is saved; text that does not hold what is wanted fails the run's step.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, TypeVar

TYPES = ("str", "int", "float", "bool", "list", "dict", "json")
_ANNOTATIONS: dict[Any, str] = {
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    list: "list",
    dict: "dict",
}

F = TypeVar("F", bound=Callable[..., Any])

# Which declared types may become which, decided when a pipeline is saved (text may hold anything).
_CAN: dict[str, set[str]] = {
    "str": set(TYPES),
    "int": {"str", "int", "float", "bool", "json"},
    "float": {"str", "int", "float", "bool", "json"},
    "bool": {"str", "int", "float", "bool", "json"},
    "list": {"str", "list", "json"},
    "dict": {"str", "dict", "json"},
    "json": set(TYPES),
}


class ConversionError(ValueError):
    """A value that cannot become the type wanted."""


def returns(type_name: str) -> Callable[[F], F]:
    """Declare what a pipeline function gives, so the next function's input is converted to fit it."""
    if type_name not in TYPES:
        raise ValueError(f"returns: {type_name!r} is not one of {', '.join(TYPES)}")

    def mark(fn: F) -> F:
        fn.__sightline_returns__ = type_name  # type: ignore[attr-defined]
        return fn

    return mark


def type_name(annotation: Any) -> str | None:
    """The type name of an annotation (``int``, ``"int"``, ``list[str]``...), None when it is not one."""
    if isinstance(annotation, str):
        base = annotation.split("[", 1)[0].strip()
        return base if base in TYPES else None
    origin = getattr(annotation, "__origin__", None)
    return _ANNOTATIONS.get(origin if origin is not None else annotation)


def type_of(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return None


def can_convert(given: str | None, wanted: str | None) -> bool:
    """Whether a value declared ``given`` may become ``wanted`` (None on either side: not known, allowed)."""
    if given is None or wanted is None:
        return True
    return given in _CAN.get(wanted, set(TYPES))


def convert(value: Any, to: str | None) -> Any:
    """``value`` as type ``to`` (None: as it is), or :class:`ConversionError` saying why not."""
    if to is None or to == "json" and not isinstance(value, str):
        return value
    try:
        return _CONVERTERS[to](value)
    except ConversionError:
        raise
    except (ValueError, TypeError, OverflowError):
        raise ConversionError(f"{_show(value)} cannot become {to}") from None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ConversionError(f"{_show(value)} is not a whole number")
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 100:
            raise ConversionError("text too long for a number")
        try:
            return int(text)
        except ValueError:
            number = float(text)
            return _to_int(number)
    raise ConversionError(f"{_show(value)} cannot become int")


def _to_float(value: Any) -> float:
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 100:
            raise ConversionError("text too long for a number")
        number = float(text)
        if not math.isfinite(number):
            raise ConversionError(f"{_show(value)} is not a finite number")
        return number
    raise ConversionError(f"{_show(value)} cannot become float")


_TRUE, _FALSE = {"true", "yes", "1", "y", "on"}, {"false", "no", "0", "n", "off", ""}


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConversionError(f"{_show(value)} is not true or false")
    if isinstance(value, list | dict):
        return bool(value)
    raise ConversionError(f"{_show(value)} cannot become bool")


def _parsed(value: str, kind: type) -> Any:
    parsed = json.loads(value)
    if not isinstance(parsed, kind):
        raise ConversionError(f"{_show(value)} does not hold a JSON {'array' if kind is list else 'object'}")
    return parsed


def _to_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return list(_parsed(value, list))
    raise ConversionError(f"{_show(value)} cannot become list")


def _to_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        return dict(_parsed(value, dict))
    raise ConversionError(f"{_show(value)} cannot become dict")


def _to_json(value: Any) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "str": _to_str,
    "int": _to_int,
    "float": _to_float,
    "bool": _to_bool,
    "list": _to_list,
    "dict": _to_dict,
    "json": _to_json,
}
