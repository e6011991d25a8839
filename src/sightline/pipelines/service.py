"""What the API, the command line and the dashboard do with pipelines and functions: one implementation.

* :func:`sync_functions` registers the built-ins and the ``custom_*.py`` functions found now (imported in
  a sandbox worker), removes the vanished ones, and says how many were added and deleted;
* :func:`validate` parses and checks an expression against the project's prompts and the registry;
* :func:`save_pipeline` validates, then stores;
* :func:`call_pipeline` runs a saved pipeline with its arguments as one run (see :mod:`.execute`).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection

from ..errors import InvalidInput, NotFound, SightlineError
from ..gateway import Caller, Context, Gateway
from ..ids import new_id
from ..schema import Error, Run
from ..settings import Settings
from ..store import Database
from ..store.access.audit import Actor
from ..store.pipelines import (
    SavedPipeline,
    SavePipeline,
    Synced,
    SyncFunctions,
    get_pipeline,
    list_functions,
    list_pipelines,
    registered_function,
)
from ..store.prompts import Prompt, get_prompt
from ..templating import TemplateError, check_prompt_name
from .execute import Callee, Execution, LimitExceeded, Limits, StepFailed, depth_of
from .expression import ExpressionError, Node, Param, Signature, calls_of, check, parse
from .loader import builtin_functions
from .sandbox import Sandbox

__all__ = [
    "PipelineFailed",
    "Result",
    "call_pipeline",
    "list_functions",
    "limits",
    "list_pipelines",
    "pipeline_args",
    "save_pipeline",
    "sync_functions",
    "validate",
]

T = TypeVar("T")
Plan = tuple[float, SavedPipeline, Node, dict[str, Callee]]  # (expires, pipeline, tree, callees)
# Checked pipelines of each database (held weakly: a database closed and dropped takes its plans with it),
# by project and the id or name asked for. Kept pipeline_cache_seconds, so a pipeline called again and
# again costs no read (a saved change, a prompt's new version or a sync is seen within that time).
_plans: weakref.WeakKeyDictionary[Database, OrderedDict[tuple[int, str, str], Plan]] = (
    weakref.WeakKeyDictionary()
)
_PLANS_KEPT = 1_000
DISCOVERY_TIMEOUT = 30.0
PRODUCTION = "production"  # the label a pipeline runs a prompt at, when the prompt has it


class PipelineFailed(SightlineError):
    """A run that failed (a step's error, a limit): a 4xx, with the run it left."""

    status_code = 422

    def __init__(self, message: str, error_type: str, run_id: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.run_id = run_id


def limits(settings: Settings) -> Limits:
    return Limits(
        settings.pipeline_max_depth,
        settings.pipeline_max_calls,
        settings.pipeline_function_timeout,
        settings.pipeline_timeout,
    )


async def sync_functions(db: Database, settings: Settings, sandbox: Sandbox, actor: Actor) -> Synced:
    """Register what exists now; answer the counts, the names and the errors found."""
    found = {name: info.to_json() for name, info in builtin_functions().items()}
    custom, errors = await sandbox.discover(settings.functions_dir, DISCOVERY_TIMEOUT)
    for name, info in custom.items():
        found.setdefault(name, info.to_json())
    result: Synced = await db.writer.write(SyncFunctions(found, errors, actor))
    return result


def _read(db: Database, query: Callable[[Connection], T]) -> T:
    """``query`` on a read connection (with the read time budget); call it off the event loop."""
    with db.read() as conn:
        return query(conn)


def _prompt_signature(prompt: Prompt) -> Signature:
    return Signature("prompt", tuple(Param(a, "str", True) for a in prompt.args), "str")


def _prompt(conn: Connection, project_id: int, name: str) -> Prompt | None:
    return get_prompt(conn, project_id, name, label=PRODUCTION) or get_prompt(conn, project_id, name)


def _callees(conn: Connection, project_id: int, node: Node) -> dict[str, Callee]:
    """What each called name is: a registered function, else a prompt of the project."""
    found: dict[str, Callee] = {}
    for call in calls_of(node):
        if call.name in found:
            continue
        function = registered_function(conn, call.name)
        if function is not None:
            signature = Signature.from_json({**function["signature"], "kind": "function"})
            found[call.name] = Callee(call.name, signature, source=function["source"])
            continue
        prompt = _prompt(conn, project_id, call.name)
        if prompt is not None:
            found[call.name] = Callee(call.name, _prompt_signature(prompt), prompt=prompt)
    return found


def _checked(
    conn: Connection, project_id: int, expression: Any, lim: Limits
) -> tuple[Node, list[str], dict[str, Callee]]:
    node = parse(expression)
    depth = depth_of(node)
    if depth > lim.max_depth:
        raise ExpressionError(
            f"nested {depth} calls deep; at most {lim.max_depth} (setting pipeline_max_depth)"
        )
    calls = len(calls_of(node))
    if calls > lim.max_calls:
        raise ExpressionError(f"makes {calls} calls; at most {lim.max_calls} (setting pipeline_max_calls)")
    callees = _callees(conn, project_id, node)
    args = check(node, lambda name: callees[name].signature if name in callees else None)
    return node, args, callees


def validate(conn: Connection, project_id: int, expression: Any, settings: Settings) -> list[str]:
    """The arguments of ``expression``, or :class:`ExpressionError` pointing at what is wrong."""
    return _checked(conn, project_id, expression, limits(settings))[1]


def _text(value: Any, field: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        raise InvalidInput(f"{field}: expected text of at most {limit} characters", field=field)
    return value


async def save_pipeline(
    db: Database, settings: Settings, project_id: int, body: Any, actor: Actor
) -> SavedPipeline:
    """Validate ``{"name", "expression", "description"?}`` and store it (replacing that name's expression)."""
    if not isinstance(body, dict):
        raise InvalidInput("expected a JSON object with name and expression", field="body")
    unknown = set(body) - {"name", "expression", "description"}
    if unknown:
        field = sorted(unknown)[0]
        raise InvalidInput(f"{field}: unknown field (expected name, expression, description)", field=field)
    try:
        name = check_prompt_name(body.get("name"))
    except TemplateError as error:
        raise InvalidInput(error.message.replace("a prompt name", "a pipeline name"), field="name") from None
    expression = _text(body.get("expression"), "expression", 10_000)
    if expression is None:
        raise InvalidInput("expression: required", field="expression")
    description = _text(body.get("description"), "description", 2_000)
    args = await asyncio.to_thread(_read, db, lambda conn: validate(conn, project_id, expression, settings))
    saved: SavedPipeline = await db.writer.write(
        SavePipeline(project_id, name, expression.strip(), args, description, actor)
    )
    _plans.pop(
        db, None
    )  # this process runs the new expression at once (others within pipeline_cache_seconds)
    return saved


def pipeline_args(db: Database, project_id: int, name: Any) -> list[str]:
    found = _find(db, project_id, None, name)
    return found.args


def _find_in(conn: Connection, project_id: int, pipeline_id: Any, name: Any) -> SavedPipeline:
    """Pipeline ``pipeline_id`` (a number, or its text) or else ``name`` of ``project_id``, or a 4xx."""
    if pipeline_id is not None:
        if (
            isinstance(pipeline_id, bool)
            or not isinstance(pipeline_id, int | str)
            or not str(pipeline_id).isdigit()
        ):
            raise InvalidInput("pipeline_id: expected a pipeline's id (a number)", field="pipeline_id")
        number = int(pipeline_id) if len(str(pipeline_id)) < 10 else -1
        found = get_pipeline(conn, project_id, pipeline_id=number)
        what = f"pipeline_id: no pipeline {pipeline_id} in this project"
        field = "pipeline_id"
    else:
        if not isinstance(name, str) or not name:
            raise InvalidInput("pipeline_name (or pipeline_id): required", field="pipeline_name")
        found = get_pipeline(conn, project_id, name=name)
        what = f"pipeline_name: no pipeline named {name[:200]!r} in this project"
        field = "pipeline_name"
    if found is None:
        raise NotFound(what, field=field)
    return found


def _find(db: Database, project_id: int, pipeline_id: Any, name: Any) -> SavedPipeline:
    return _read(db, lambda conn: _find_in(conn, project_id, pipeline_id, name))


@dataclass(frozen=True, slots=True)
class Result:
    response: Any
    run_id: str
    generations: list[str]


def _arguments(wanted: list[str], given: Any) -> dict[str, Any]:
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise InvalidInput("args: expected an object of the pipeline's arguments", field="args")
    missing = [a for a in wanted if a not in given]
    extra = sorted(set(given) - set(wanted))
    if missing:
        raise InvalidInput(
            f"args: missing {', '.join(missing)} (the pipeline takes {', '.join(wanted)})", field="args"
        )
    if extra:
        raise InvalidInput(
            f"args: {', '.join(extra)} not taken (the pipeline takes {', '.join(wanted) or 'no arguments'})",
            field="args",
        )
    return dict(given)


async def call_pipeline(
    *,
    db: Database,
    settings: Settings,
    gateway: Gateway,
    sandbox: Sandbox,
    caller: Caller,
    body: Mapping[str, Any],
    user: str | None = None,
) -> Result:
    """Run the pipeline ``body`` names (``pipeline_id`` or ``pipeline_name``) with ``body["args"]``
    through the gateway (``openaikey_id``: a stored provider of the project) as one run."""
    unknown = set(body) - {"pipeline_id", "pipeline_name", "args", "openaikey_id"}
    if unknown:
        field = sorted(unknown)[0]
        raise InvalidInput(
            f"{field}: unknown field (expected pipeline_id or pipeline_name, args, openaikey_id)", field=field
        )
    project_id = caller.key.project_id
    provider = body.get("openaikey_id")
    if provider is not None and (isinstance(provider, bool) or not isinstance(provider, int | str)):
        raise InvalidInput("openaikey_id: expected a provider id", field="openaikey_id")
    lim = limits(settings)

    def plan(conn: Connection) -> tuple[SavedPipeline, Node, dict[str, Callee]]:
        # One connection, one trip off the event loop: the pipeline, then what it calls.
        saved = _find_in(conn, project_id, body.get("pipeline_id"), body.get("pipeline_name"))
        try:
            node, _, callees = _checked(conn, project_id, saved.expression, lim)
        except ExpressionError as error:
            # Something it calls changed since it was saved (a prompt's arguments, a function removed).
            raise InvalidInput(
                f"pipeline {saved.name!r} no longer checks: {error}", field="pipeline"
            ) from None
        return saved, node, callees

    plans = _plans.setdefault(db, OrderedDict())
    key = (project_id, str(body.get("pipeline_id")), str(body.get("pipeline_name")))
    cached = plans.get(key)
    if cached is not None and cached[0] > time.monotonic():
        _, saved, node, callees = cached
    else:
        saved, node, callees = await asyncio.to_thread(_read, db, plan)
        if settings.pipeline_cache_seconds > 0:
            plans[key] = (time.monotonic() + settings.pipeline_cache_seconds, saved, node, callees)
            while len(plans) > _PLANS_KEPT:
                plans.popitem(last=False)
    args = _arguments(saved.args, body.get("args"))
    run_id = new_id()[0]
    context = Context(run_id=run_id, user_id=user, provider=None if provider in (None, "") else str(provider))
    execution = Execution(gateway, caller, context, callees, sandbox, settings.functions_dir, lim)
    started = datetime.now(UTC)
    failure: tuple[str, str] | None = None
    output: Any = None
    try:
        output = await execution.run(node, args)
    except StepFailed as error:
        failure = ("step_failed", str(error))
    except LimitExceeded as error:
        failure = ("limit_exceeded", str(error))
    run = Run(
        id=run_id,
        pipeline_slug=saved.name,
        user_id=user,
        metadata={"pipelineId": str(saved.id)},
        started_at=started,
        ended_at=datetime.now(UTC),
        status="error" if failure else "ok",
        error=Error(type=failure[0], message=failure[1][:2000]) if failure else None,
        steps=sorted(execution.steps, key=lambda s: s.step_index or 0),
        output=None if failure else output,
    )
    # In the background, as the gateway records the calls: the answer does not wait for the writer.
    gateway.recorder.record_run(caller.key.scope, run)
    if failure is not None:
        raise PipelineFailed(failure[1], failure[0], run_id)
    return Result(output, run_id, execution.generations)
