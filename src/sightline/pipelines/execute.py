"""Running a checked pipeline: every prompt call through the gateway, every function call as a step.

The arguments of a call are evaluated concurrently (independent branches run side by side), converted
to the types the callee takes, then the callee runs:

* a **prompt** is rendered with its arguments and sent as a chat completion with the prompt's model and
  parameters through :meth:`Gateway.model_call` (the same path as the AI-Eye endpoints: the caller's
  provider choice, the cache, pricing, recording). Its generation carries the run id, its step index
  and the prompt's template, so it is recorded under the prompt's name and version;
* a **built-in** runs in this process; a **custom** function runs in a sandbox worker with a deadline.

Every function call is kept as a :class:`~sightline.schema.RunStep` with its inputs, output and timing.
The first step to fail ends the execution (:class:`StepFailed`); limits end it with :class:`LimitExceeded`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ..errors import SightlineError
from ..gateway import Caller, Context, Gateway, answer_text
from ..schema import Error, RunStep
from ..store.prompts import Prompt
from ..templating import TemplateError
from . import builtins, convert
from .expression import Call, Const, Name, Node, Signature, bind
from .loader import BUILTIN_SOURCE
from .sandbox import FunctionFailed, FunctionTimeout, Sandbox

__all__ = ["Callee", "Execution", "LimitExceeded", "Limits", "StepFailed", "depth_of"]

_MAX_SHOWN = 20_000  # characters of a step's inputs or output kept in the run


class StepFailed(Exception):
    """A step that failed: its name and why (the model's error, the function's exception, a conversion)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name, self.message = name, message


class LimitExceeded(Exception):
    """An execution past one of the limits (its message names the setting)."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_depth: int = 16
    max_calls: int = 100
    function_timeout: float = 10.0
    timeout: float = 120.0


@dataclass(frozen=True, slots=True)
class Callee:
    """What a call names: a prompt (with the version to run) or a registered function."""

    name: str
    signature: Signature
    prompt: Prompt | None = None
    source: str | None = None  # a function's: "builtin" or its custom_*.py file's name


def depth_of(node: Node) -> int:
    if isinstance(node, Call):
        return 1 + max((depth_of(a) for a in (*node.args, *(v for _, v in node.kwargs))), default=0)
    return 0


def _shown(value: Any) -> Any:
    """A value as a run keeps it: whole when small, else its text cut."""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    if len(text) <= _MAX_SHOWN:
        return value
    return text[: _MAX_SHOWN - 1] + "…"


def _utc(wall: float) -> datetime:
    return datetime.fromtimestamp(wall, UTC)


@dataclass
class Execution:
    """One run of a pipeline: runs ``node`` with ``args`` and keeps its steps."""

    gateway: Gateway
    caller: Caller
    context: Context  # the run id and the provider choice; each prompt call adds its step and template
    callees: Mapping[str, Callee]
    sandbox: Sandbox
    functions_dir: Path | None
    limits: Limits
    steps: list[RunStep] = field(default_factory=list)
    generations: list[str] = field(default_factory=list)
    _index: Callable[[], int] = field(default_factory=lambda: itertools.count().__next__)

    async def run(self, node: Node, args: Mapping[str, Any]) -> Any:
        try:
            async with asyncio.timeout(self.limits.timeout):
                return await self._eval(node, args)
        except TimeoutError:
            raise LimitExceeded(
                f"the pipeline ran longer than {self.limits.timeout:g} s (setting pipeline_timeout)"
            ) from None

    async def _eval(self, node: Node, args: Mapping[str, Any]) -> Any:
        if isinstance(node, Const):
            return node.value
        if isinstance(node, Name):
            return args[node.name]
        callee = self.callees[node.name]
        bound = bind(node, callee.signature)
        values = await asyncio.gather(*(self._eval(value, args) for _, value in bound))
        inputs: dict[str, Any] = {}
        for (param, _), value in zip(bound, values, strict=True):
            try:
                inputs[param.name] = convert.convert(value, param.type)
            except convert.ConversionError as error:
                raise StepFailed(node.name, f"argument {param.name}: {error}") from None
        if callee.prompt is not None:
            return await self._prompt(callee, inputs)
        return await self._function(callee, inputs)

    async def _prompt(self, callee: Callee, inputs: dict[str, Any]) -> str:
        prompt = callee.prompt
        assert prompt is not None
        index = self._index()
        texts = {k: convert.convert(v, "str") for k, v in inputs.items()}
        try:
            body = prompt.request(texts)
        except TemplateError as error:
            raise StepFailed(callee.name, error.message) from None
        if not body.get("model"):
            raise StepFailed(callee.name, "the prompt has no model: save a version of it with one")
        context = dataclasses.replace(
            self.context, step_index=index, template=prompt.recorded_template(texts)
        )
        try:
            answer = await self.gateway.model_call(
                self.caller, "chat/completions", body, context, forward={}, default_cache="use"
            )
        except SightlineError as error:
            raise StepFailed(callee.name, error.message) from None
        try:
            parsed = orjson.loads(answer.body or b"null")
        except orjson.JSONDecodeError:
            parsed = None
        finally:
            answer.finish()  # records the generation (and caches the answer) in the background
        if answer.call is not None and answer.call.generation_id:
            self.generations.append(answer.call.generation_id)
        if answer.status >= 400:
            failed = parsed.get("error") if isinstance(parsed, dict) else None
            message = failed.get("message") if isinstance(failed, dict) else None
            raise StepFailed(callee.name, str(message or f"the model call failed ({answer.status})"))
        text = answer_text("chat", parsed)
        return text if isinstance(text, str) else convert.convert(text, "str")

    async def _function(self, callee: Callee, inputs: dict[str, Any]) -> Any:
        index = self._index()
        wall, started = time.time(), time.perf_counter()
        step = {"name": callee.name, "step_index": index, "inputs": _shown(inputs), "started_at": _utc(wall)}
        try:
            if callee.source == BUILTIN_SOURCE:
                fn = builtins.BUILTINS.get(callee.name)
                if fn is None:
                    raise FunctionFailed("no longer a built-in: sync the functions")
                try:
                    output = fn(**inputs)
                except Exception as error:  # noqa: BLE001 - a built-in's error is the step's
                    raise FunctionFailed(f"{type(error).__name__}: {error}") from None
            else:
                if self.functions_dir is None or callee.source is None:
                    raise FunctionFailed("the functions folder is not set (SIGHTLINE_FUNCTIONS_DIR)")
                file = self.functions_dir / callee.source
                output = await self.sandbox.call(
                    str(file), callee.name, [], inputs, self.limits.function_timeout
                )
        except FunctionTimeout as error:
            self._keep(step, wall, started, error=f"{error} (setting pipeline_function_timeout)")
            raise StepFailed(callee.name, f"{error} (setting pipeline_function_timeout)") from None
        except FunctionFailed as error:
            self._keep(step, wall, started, error=str(error))
            raise StepFailed(callee.name, str(error)) from None
        returns = callee.signature.returns
        if returns is not None and returns != "json":
            try:
                output = convert.convert(output, returns)
            except convert.ConversionError as error:
                self._keep(step, wall, started, error=f"its result: {error}")
                raise StepFailed(callee.name, f"its result: {error}") from None
        self._keep(step, wall, started, output=output)
        return output

    def _keep(
        self,
        step: dict[str, Any],
        wall: float,
        started: float,
        *,
        output: Any = None,
        error: str | None = None,
    ) -> None:
        ended = _utc(wall + time.perf_counter() - started)
        if error is None:
            self.steps.append(RunStep(**step, outputs=_shown(output), ended_at=ended))
        else:
            self.steps.append(
                RunStep(
                    **step,
                    ended_at=ended,
                    status="error",
                    error=Error(type="step_failed", message=error[:2000]),
                )
            )
