"""A gentrace 0.x pipeline run, as its Python SDK posts it, turned into Sightline's wire models.

``POST /api/v1/run`` (gentrace-py 0.x, and the older ``POST /api/v1/pipeline-run``) carries one run::

    {"id", "slug", "previousRunId"?, "metadata": {key: {"type": "string"|"url"|..., ...}},
     "stepRuns": [{"providerName", "invocation", "modelParams", "inputs", "outputs",
                   "elapsedTime" (ms), "startTime", "endTime",
                   "context": {"userId"?, "metadata"?, "render"?}}]}

The oldest clients nest a step's call under ``"provider": {"name", "invocation", "modelParams", "inputs",
"outputs"}`` and name the pipeline ``"name"`` (or ``"pipelineId"``); both shapes are read here.

:func:`translate` gives a :class:`~sightline.schema.Run` (slug, the userId of its steps' context, metadata
merged from the run and its steps, the latest write per key winning), one
:class:`~sightline.schema.Generation` per OpenAI step (through :func:`sightline.mapping.generation`, the
one mapping of an OpenAI call; the template from ``contentTemplates``/``contentInputs`` or
``promptTemplate``), and the run's other steps as :class:`~sightline.schema.RunStep`. Generation ids are
derived from the run id and the step's position, so posting the same run twice writes nothing new.

A run-level mistake (no id, no steps, malformed metadata, a wrong type) raises
:class:`~sightline.errors.InvalidInput` naming the field; a bad step is refused alone, the others kept.
Pure: leaves only (no store, no server, no SDK).
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from sightline.errors import InvalidInput
from sightline.ids import new_id
from sightline.mapping import generation
from sightline.schema import MAX_METADATA_KEYS, Generation, Run, RunStep, normalize_metadata
from sightline.templating import template_name, template_version

__all__ = [
    "MODEL_INVOCATIONS",
    "StepRefusal",
    "Translated",
    "check_metadata",
    "render_mustache",
    "translate",
]

# The invocations gentrace's OpenAI handlers record, and the kind of call each is in sightline.mapping.
MODEL_INVOCATIONS = {
    "openai_createChatCompletion": "chat",
    "openai_createCompletion": "completion",
    "openai_createEmbedding": "embedding",
}
# Generation ids are uuid5(run id / step position) in this namespace: the same run posted twice is
# the same generations, which the store writes once.
_NAMESPACE = uuid.UUID("6f0f5c55-3c0b-4c39-9e43-0c7a9c1d2b6e")
_MAX_ID = 200
_MUSTACHE = re.compile(r"\{\{\{\s*([^{}\s]+)\s*\}\}\}|\{\{\s*([&!]?)\s*([^{}]*?)\s*\}\}")
_TEMPLATE_KEYS = ("contentTemplate", "contentInputs")


@dataclass(frozen=True, slots=True)
class StepRefusal:
    """A step run that was refused (its neighbours were kept)."""

    index: int
    error: InvalidInput


@dataclass(slots=True)
class Translated:
    """What one gentrace run becomes: the run (with its non-model steps), its generations, the refusals."""

    run: Run
    generations: list[Generation] = field(default_factory=list)
    refused: list[StepRefusal] = field(default_factory=list)


# -- metadata, as the Metadata document types it ----------------------------------------------------


def check_metadata(raw: Any, where: str, max_keys: int = MAX_METADATA_KEYS) -> dict[str, Any]:
    """gentrace metadata, normalised; :class:`InvalidInput` naming ``where.<key>`` when malformed.

    Every value is an object with a ``"type"`` key: ``{"type": "string", "value"}`` or ``{"type": "url",
    "url", "text"}`` (``{"type": "boolean", "value"}`` too, which gentrace's API also takes); anything
    else is refused, as the Metadata document says its API does.
    """
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidInput(f"{where}: expected an object of typed values", field=where)
    for key, value in raw.items():
        if not isinstance(value, Mapping) or "type" not in value:
            raise InvalidInput(
                f"{where}.{key}: every metadata value must be an object with a 'type' key "
                '(e.g. {"type": "string", "value": "..."} or {"type": "url", "url": "...", "text": "..."})',
                field=f"{where}.{key}",
            )
    try:
        return normalize_metadata(dict(raw), max_keys)
    except ValueError as exc:
        key = next((str(k) for k in raw if f"'{k}'" in str(exc)), None)
        name = f"{where}.{key}" if key else where
        raise InvalidInput(f"{where}: {exc}", field=name) from None


# -- templates ------------------------------------------------------------------------------------


def _lookup(inputs: Any, name: str) -> Any:
    if name == ".":
        return inputs
    value = inputs
    for part in name.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            return ""  # pystache renders a missing name as nothing
    return value


def render_mustache(template: str, inputs: Any) -> str:
    """``template`` rendered as gentrace's client renders it (pystache): what the model was sent.

    ``{{name}}`` is HTML-escaped, ``{{{name}}}`` and ``{{& name}}`` are not, a missing name renders as
    nothing, dotted names look into objects, ``{{! comments }}`` vanish. (The SDK's own renderer refuses
    a missing input instead; here the call was already made, so the record shows what was sent.)
    """

    def one(match: re.Match[str]) -> str:
        triple, sigil, name = match.group(1), match.group(2), match.group(3)
        if sigil == "!":
            return ""
        value = _lookup(inputs, triple if triple is not None else name)
        text = value if isinstance(value, str) else "" if value is None else str(value)
        return text if triple is not None or sigil == "&" else html.escape(text)

    return _MUSTACHE.sub(one, template)


def _chat_template(
    messages: list[Any], templates: Any, inputs: Any
) -> tuple[list[Any], dict[str, Any] | None]:
    """(messages as sent, the template record or None) of a chat step's messages."""
    templates = templates if isinstance(templates, list) else []
    inputs = inputs if isinstance(inputs, list) else []
    sent: list[Any] = []
    chat: list[Any] = []
    params: dict[str, Any] = {}
    templated = False
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            sent.append(message)
            chat.append(message)
            continue
        source = message.get("contentTemplate")
        if not isinstance(source, str) and i < len(templates) and isinstance(templates[i], str):
            source = templates[i]
        values = message.get("contentInputs")
        if not isinstance(values, Mapping) and i < len(inputs) and isinstance(inputs[i], Mapping):
            values = inputs[i]
        rest = {k: v for k, v in message.items() if k not in _TEMPLATE_KEYS}
        if not isinstance(source, str):
            sent.append(rest)
            chat.append(rest)
            continue
        templated = True
        values = values if isinstance(values, Mapping) else {}
        content = rest["content"] if isinstance(rest.get("content"), str) else render_mustache(source, values)
        sent.append({**rest, "content": content})
        chat.append({**rest, "content": source})
        params.update(values)
    if not templated:
        return sent, None
    return sent, {
        "name": template_name(chat, None),
        "version": template_version(chat, None),
        "chat": chat,
        "params": params,
    }


# -- steps ----------------------------------------------------------------------------------------


def _time(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidInput(
            f"{where}: expected an ISO 8601 time such as '2024-01-01T00:00:00.000Z'", field=where
        )
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise InvalidInput(f"{where}: {value[:40]!r} is not an ISO 8601 time", field=where) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _flatten(step: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A step run in the current shape; the oldest clients nest its call under ``"provider"``."""
    provider = step.get("provider")
    if provider is None:
        return dict(step)
    if not isinstance(provider, Mapping):
        raise InvalidInput(f"{where}.provider: expected an object", field=f"{where}.provider")
    flat = {k: v for k, v in step.items() if k != "provider"}
    flat["providerName"] = provider.get("name", flat.get("providerName"))
    for key in ("invocation", "modelParams", "inputs", "outputs"):
        if key in provider:
            flat[key] = provider[key]
    return flat


def _object(step: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = step.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{where}.{key}: expected an object", field=f"{where}.{key}")
    return dict(value)


def _validation(exc: ValidationError, where: str) -> InvalidInput:
    problems, first = [], where
    for i, err in enumerate(exc.errors()):
        path = ".".join([where, *(str(p) for p in err.get("loc", ()))])
        if i == 0:
            first = path
        problems.append(f"{path}: {str(err.get('msg', 'invalid')).removeprefix('Value error, ')}")
    return InvalidInput("; ".join(problems), field=first)


@dataclass(slots=True)
class _Step:
    index: int
    where: str
    provider: str
    invocation: str
    model_params: dict[str, Any]
    inputs: dict[str, Any]
    outputs: Any
    started: datetime
    ended: datetime
    elapsed_ms: float
    user_id: str | None
    metadata: dict[str, Any]


def _read_step(raw: Any, index: int, max_keys: int) -> _Step:
    where = f"stepRuns[{index}]"
    if not isinstance(raw, Mapping):
        raise InvalidInput(f"{where}: expected an object", field=where)
    step = _flatten(raw, where)
    invocation = step.get("invocation")
    if not isinstance(invocation, str) or not invocation or len(invocation) > _MAX_ID:
        raise InvalidInput(
            f"{where}.invocation: expected a name such as 'openai_createChatCompletion' "
            "(at most 200 characters)",
            field=f"{where}.invocation",
        )
    provider = step.get("providerName", "undeclared")
    if not isinstance(provider, str) or len(provider) > _MAX_ID:
        raise InvalidInput(f"{where}.providerName: expected a string", field=f"{where}.providerName")
    if provider == "openai" and invocation not in MODEL_INVOCATIONS and invocation.startswith("openai_"):
        known = ", ".join(MODEL_INVOCATIONS)
        raise InvalidInput(
            f"{where}.invocation: unknown OpenAI invocation {invocation!r} (known: {known})",
            field=f"{where}.invocation",
        )
    started = _time(step.get("startTime"), f"{where}.startTime")
    ended = _time(step.get("endTime"), f"{where}.endTime")
    elapsed = step.get("elapsedTime")
    if elapsed is None:
        elapsed = max(0.0, (ended - started).total_seconds() * 1000)
    if isinstance(elapsed, bool) or not isinstance(elapsed, int | float) or not 0 <= elapsed <= 1e12:
        raise InvalidInput(
            f"{where}.elapsedTime: expected milliseconds, a number >= 0", field=f"{where}.elapsedTime"
        )
    context = _object(step, "context", where)
    user = context.get("userId")
    if user is not None and (not isinstance(user, str) or not user or len(user) > _MAX_ID):
        raise InvalidInput(
            f"{where}.context.userId: expected a string of 1 to 200 characters",
            field=f"{where}.context.userId",
        )
    return _Step(
        index=index,
        where=where,
        provider=provider,
        invocation=invocation,
        model_params=_object(step, "modelParams", where),
        inputs=_object(step, "inputs", where),
        outputs=step.get("outputs"),
        started=started,
        ended=ended,
        elapsed_ms=float(elapsed),
        user_id=user,
        metadata=check_metadata(context.get("metadata"), f"{where}.context.metadata", max_keys),
    )


def _request(kind: str, step: _Step) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the OpenAI request the step made, its template record or None)."""
    params = {k: v for k, v in step.model_params.items() if k not in ("contentTemplates", "promptTemplate")}
    inputs = step.inputs
    if kind == "chat":
        messages = inputs.get("messages")
        if not isinstance(messages, list):
            raise InvalidInput(
                f"{step.where}.inputs.messages: expected the list of messages sent",
                field=f"{step.where}.inputs.messages",
            )
        sent, template = _chat_template(
            messages, step.model_params.get("contentTemplates"), inputs.get("contentInputs")
        )
        request = {**params, "messages": sent}
        if inputs.get("user") is not None:
            request["user"] = inputs["user"]
        return request, template
    if kind == "completion":
        source = step.model_params.get("promptTemplate")
        prompt = inputs.get("prompt")
        request = {**params, **{k: v for k, v in inputs.items() if k != "prompt" and v is not None}}
        if isinstance(source, str):
            values = prompt if isinstance(prompt, Mapping) else {}
            request["prompt"] = render_mustache(source, values)
            return request, {
                "name": template_name(None, source),
                "version": template_version(None, source),
                "text": source,
                "params": dict(values),
            }
        request["prompt"] = prompt
        return request, None
    return {**params, **inputs}, None


def _generation(kind: str, step: _Step, run_id: str, context: dict[str, Any]) -> Generation:
    request, template = _request(kind, step)
    answer = step.outputs if isinstance(step.outputs, Mapping) else None
    body = generation(
        kind,
        request,
        answer,
        generation_id=str(uuid.uuid5(_NAMESPACE, f"{run_id}/{step.index}")),
        timestamp=step.started,
        started=0.0,
        ended=step.elapsed_ms / 1000,
        provider=step.provider if step.provider not in ("", "undeclared") else None,
    )
    if template is not None:
        body["template"] = template
    body["runId"] = run_id
    body["stepIndex"] = step.index
    try:
        return Generation.model_validate(body, context=context)
    except ValidationError as exc:
        raise _validation(exc, step.where) from None


def _run_step(step: _Step) -> RunStep:
    body: dict[str, Any] = {
        "name": step.invocation,
        "stepIndex": step.index,
        "inputs": step.inputs,
        "outputs": step.outputs,
        "startedAt": step.started,
        "endedAt": step.ended,
        "providerName": step.provider,
        "elapsedTime": step.elapsed_ms,
    }
    if step.model_params:
        body["modelParams"] = step.model_params
    try:
        return RunStep.model_validate(body)
    except ValidationError as exc:
        raise _validation(exc, step.where) from None


# -- the run --------------------------------------------------------------------------------------


def _run_id(body: Mapping[str, Any], legacy: bool) -> str:
    value = body.get("id")
    if value is None and legacy:
        return new_id()[0]  # the oldest clients let the server name the run
    if not isinstance(value, str) or not value or len(value) > _MAX_ID or "\x00" in value:
        raise InvalidInput(
            "id: expected the run's id, a string such as a UUID (at most 200 characters)", field="id"
        )
    return value


def _slug(body: Mapping[str, Any], legacy: bool) -> str | None:
    names = ("slug", "pipelineSlug", "name", "pipelineId") if legacy else ("slug", "pipelineSlug")
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not value or len(value) > _MAX_ID:
            raise InvalidInput(
                f"{name}: expected the pipeline's slug, a string of 1 to 200 characters", field=name
            )
        return value
    return None


def translate(
    body: Any, *, legacy: bool = False, max_metadata_keys: int = MAX_METADATA_KEYS, max_steps: int = 1000
) -> Translated:
    """The run, generations and refused steps of a gentrace run body (see the module's text).

    ``legacy`` reads the older ``/api/v1/pipeline-run`` body (a run id is made when it has none).
    Raises :class:`InvalidInput` naming the field when the run itself is malformed, or when every
    one of its steps is refused.
    """
    if not isinstance(body, Mapping):
        raise InvalidInput("body must be a JSON object: a gentrace pipeline run")
    run_id = _run_id(body, legacy)
    slug = _slug(body, legacy)
    raw_steps = body.get("stepRuns")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise InvalidInput("stepRuns: expected a non-empty list of step runs", field="stepRuns")
    if len(raw_steps) > max_steps:
        raise InvalidInput(
            f"stepRuns: at most {max_steps} step runs per run, got {len(raw_steps)}", field="stepRuns"
        )
    metadata = check_metadata(body.get("metadata"), "metadata", max_metadata_keys)
    previous = body.get("previousRunId")
    if previous is not None:
        if not isinstance(previous, str) or not previous or len(previous) > _MAX_ID:
            raise InvalidInput("previousRunId: expected a run id or null", field="previousRunId")
        metadata["previousRunId"] = {"type": "string", "value": previous}
    context = {"max_metadata_keys": max_metadata_keys}
    out = Translated(run=Run(id=run_id))
    steps: list[RunStep] = []
    user: tuple[str, str] | None = None  # (userId, the step that gave it)
    times: list[datetime] = []
    for index, raw in enumerate(raw_steps):
        try:
            step = _read_step(raw, index, max_metadata_keys)
            if step.user_id is not None and user is not None and step.user_id != user[0]:
                raise InvalidInput(
                    f"{step.where}.context.userId: the userId parameter cannot be specified on a single "
                    f"step within a multi-step pipeline (this run's userId is {user[0]!r}, from {user[1]})",
                    field=f"{step.where}.context.userId",
                )
            kind = MODEL_INVOCATIONS.get(step.invocation)
            if kind is not None:
                out.generations.append(_generation(kind, step, run_id, context))
            else:
                steps.append(_run_step(step))
        except InvalidInput as exc:
            out.refused.append(StepRefusal(index, exc))
            continue
        if step.user_id is not None and user is None:
            user = (step.user_id, step.where)
        metadata.update(step.metadata)  # the latest write per key wins
        times.extend((step.started, step.ended))
    if not times:
        first = out.refused[0].error
        message = "; ".join(r.error.message for r in out.refused[:5])
        raise InvalidInput(f"every step run was refused: {message}", field=first.field)
    try:
        out.run = Run.model_validate(
            {
                "id": run_id,
                "pipelineSlug": slug,
                "userId": user[0] if user else None,
                "metadata": metadata,
                "startedAt": min(times),
                "endedAt": max(times),
                "status": "ok",
                "steps": steps,
            },
            context=context,
        )
    except ValidationError as exc:
        raise _validation(exc, "run") from None
    return out
