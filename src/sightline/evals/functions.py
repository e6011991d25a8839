"""Function evaluators: a registered Python function (a built-in, or one of the ``custom_*.py`` files
an admin synced, as pipelines use them) that scores a generation.

Config: ``{"function": "name"}``. The function is called with those of these keyword arguments its
signature names: ``output`` (text), ``input`` (text), ``reference`` (text or None), ``metadata``
(dict) and ``record`` (the whole generation record); a parameter it has beyond these must have a
default. It answers a number (the value), ``True``/``False`` (1 pass / 0 fail), a text (the label), or
``{"value"?, "label"?, "comment"?}``; anything else, or an exception, is an evaluation error. Custom
functions run in the pipelines' sandbox with its deadline (``pipeline_function_timeout``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from ..errors import InvalidInput
from ..pipelines import builtins
from ..pipelines.loader import BUILTIN_SOURCE
from ..pipelines.sandbox import FunctionFailed, Sandbox
from ..store.pipelines import registered_function
from .rules import Outcome

__all__ = ["ARGUMENTS", "FunctionEvaluator", "check_function", "verdict_of"]

ARGUMENTS = ("output", "input", "reference", "metadata", "record")


class FunctionError(Exception):
    """The function failed, or answered something that is not a score."""


@dataclass(frozen=True, slots=True)
class FunctionEvaluator:
    name: str
    source: str
    params: tuple[str, ...]  # the arguments of ARGUMENTS it takes

    async def evaluate(
        self, sandbox: Sandbox, functions_dir: Path | None, timeout: float, arguments: Mapping[str, Any]
    ) -> Outcome:
        kwargs = {name: arguments.get(name) for name in self.params}
        try:
            if self.source == BUILTIN_SOURCE:
                fn = builtins.BUILTINS.get(self.name)
                if fn is None:
                    raise FunctionError(f"{self.name} is no longer a built-in: sync the functions")
                try:
                    answer = fn(**kwargs)
                except Exception as exc:  # noqa: BLE001 - the function's error is the evaluation's
                    raise FunctionError(f"{type(exc).__name__}: {exc}") from None
            else:
                if functions_dir is None:
                    raise FunctionError("the functions folder is not set (SIGHTLINE_FUNCTIONS_DIR)")
                answer = await sandbox.call(str(functions_dir / self.source), self.name, [], kwargs, timeout)
        except FunctionFailed as exc:
            raise FunctionError(str(exc)) from None
        return verdict_of(answer)


def verdict_of(answer: Any) -> Outcome:
    """A function's answer as a score; FunctionError when it is not one."""
    if isinstance(answer, bool):
        return Outcome(float(answer), "pass" if answer else "fail")
    if isinstance(answer, int | float):
        if not math.isfinite(answer) or abs(answer) > 1e12:
            raise FunctionError(f"the function answered {answer!r}, not a finite score")
        return Outcome(float(answer), None)
    if isinstance(answer, str) and 0 < len(answer) <= 100:
        return Outcome(None, answer)
    if isinstance(answer, Mapping) and set(answer) <= {"value", "label", "comment"}:
        value, label, comment = answer.get("value"), answer.get("label"), answer.get("comment")
        number = verdict_of(value).value if value is not None and not isinstance(value, str) else None
        if value is not None and number is None:
            raise FunctionError("the function's value is not a number")
        if label is not None and not (isinstance(label, str) and 0 < len(label) <= 100):
            raise FunctionError("the function's label is not a text of 1 to 100 characters")
        if number is None and label is None:
            raise FunctionError("the function answered neither a value nor a label")
        return Outcome(number, label, str(comment)[:2000] if comment is not None else None)
    raise FunctionError(
        f"the function answered a {type(answer).__name__}: expected a number, a boolean, a label or "
        '{"value", "label", "comment"}'
    )


def check_function(conn: Connection, config: Any) -> FunctionEvaluator:
    """``config`` checked: the function is registered, and takes what an evaluator gives it."""
    if not isinstance(config, Mapping):
        raise InvalidInput("config: expected an object", field="config")
    for key in sorted(set(config) - {"function"}):
        raise InvalidInput(f"config.{key}: unknown setting of a function evaluator", field=f"config.{key}")
    name = config.get("function")
    if not isinstance(name, str) or not name:
        raise InvalidInput(
            "config.function: expected the name of a registered function", field="config.function"
        )
    found = registered_function(conn, name)
    if found is None:
        raise InvalidInput(
            f"config.function: no registered function {name!r} (an admin syncs the functions folder)",
            field="config.function",
        )
    params: list[str] = []
    for param in (found["signature"] or {}).get("params", []):
        if param.get("name") in ARGUMENTS:
            params.append(param["name"])
        elif param.get("required"):
            raise InvalidInput(
                f"config.function: {name} takes {param.get('name')!r}; an evaluator gives only "
                f"{', '.join(ARGUMENTS)} (give the others defaults)",
                field="config.function",
            )
    return FunctionEvaluator(name, found["source"], tuple(params))
