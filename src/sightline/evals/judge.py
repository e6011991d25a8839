"""The LLM judge: a prompt asks a model to score a generation, and its answer is read into a score.

Its config::

    {"model": "gpt-4o-mini",            # the judge's model (else the managed prompt's)
     "prompt": "support-judge",         # a managed prompt (its latest version), or
     "messages": [{"role": "user", "content": "Rate {output} for {input}..."}],   # its own template
     "scale": {"min": 0, "max": 1},     # a number in this range (the default), or
     "labels": ["correct", "incorrect"],  # one of these labels (the first scores 1, the last 0)
     "provider": "openai"}              # a stored provider (else the project's default)

The template's variables are ``{input}``, ``{output}``, ``{reference}`` and ``{metadata.<key>}`` (a
managed prompt's arguments take the same names, a metadata key by its own name). Without a prompt or
messages, a built-in judge prompt is used. The call goes through the gateway's own path (the stored
provider, the cache, pricing, recording), and its generation is tagged ``sightline:judge`` so online
evaluation never evaluates it in turn.

The answer is read as JSON (``{"score": 0.8, "reasoning": "..."}`` or ``{"label": ..., ...}``, in a
code fence or not) or as ``Score: 0.8`` / ``Label: correct`` lines; anything else, or a number
outside the scale, or a label not in the list, is an evaluation error (:class:`Unreadable`), never a
made-up score. A provider that is down or rate-limiting (429, 5xx) raises :class:`RetryLater`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection

from ..errors import InvalidInput
from ..gateway import Caller, Context, Gateway, answer_text
from ..store.prompts import get_prompt
from .rules import Outcome

__all__ = [
    "JUDGE_TAG",
    "Judge",
    "RetryLater",
    "Unreadable",
    "ask",
    "check_judge",
    "read_verdict",
    "variables",
]

JUDGE_TAG = "sightline:judge"
_VARIABLE = re.compile(r"\{(input|output|reference|metadata\.[^{}\s]{1,200})\}")
_LINE = re.compile(r"(?i)\b(score|rating|label|verdict)\s*\**\s*[:=]\s*\**\s*([^\n*]+)")
_MAX_TEXT = 50_000  # characters of an input, output or reference put into a judge's prompt

_SYSTEM = (
    "You are an impartial judge of an AI assistant's answer. Judge how well the answer serves the "
    "input{reference_clause}. Reply with JSON only, no other text: {shape}"
)


class RetryLater(Exception):
    """The judge could not be asked now (its provider is down or rate-limiting): try the batch again."""


class Unreadable(Exception):
    """The judge answered something that is not a score of the kind asked for."""


@dataclass(frozen=True, slots=True)
class Judge:
    """A checked judge config."""

    model: str | None
    prompt: str | None
    messages: tuple[Mapping[str, str], ...] | None
    low: float
    high: float
    labels: tuple[str, ...] | None
    provider: str | None

    def shape(self) -> str:
        if self.labels:
            options = ", ".join(f'"{label}"' for label in self.labels)
            return f'{{"label": one of {options}, "reasoning": "<one or two sentences>"}}'
        scale = f"<a number from {self.low:g} to {self.high:g}>"
        return f'{{"score": {scale}, "reasoning": "<one or two sentences>"}}'

    def default_messages(self) -> list[dict[str, str]]:
        system = _SYSTEM.format(
            reference_clause=", compared with the reference answer when one is given", shape=self.shape()
        )
        user = (
            "Input:\n{input}\n\nAnswer to judge:\n{output}\n\nReference answer (may be empty):\n{reference}"
        )
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _number(config: Mapping[str, Any], key: str, default: float) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise InvalidInput(f"config.scale.{key}: expected a number", field="config.scale")
    return float(value)


def check_judge(conn: Connection, project_id: int, config: Any) -> Judge:
    """``config`` checked (InvalidInput naming ``config.<key>``): the managed prompt must exist."""
    if not isinstance(config, Mapping):
        raise InvalidInput("config: expected an object", field="config")
    unknown = set(config) - {"model", "prompt", "messages", "scale", "labels", "provider"}
    for key in sorted(unknown):
        raise InvalidInput(f"config.{key}: unknown setting of the LLM judge", field=f"config.{key}")
    model, prompt, provider = config.get("model"), config.get("prompt"), config.get("provider")
    for key, value in (("model", model), ("prompt", prompt), ("provider", provider)):
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 200):
            raise InvalidInput(f"config.{key}: expected a name of 1 to 200 characters", field=f"config.{key}")
    messages = config.get("messages")
    if messages is not None:
        if (
            not isinstance(messages, list)
            or not 1 <= len(messages) <= 20
            or not all(
                isinstance(m, Mapping)
                and m.get("role") in ("system", "user", "assistant", "developer")
                and isinstance(m.get("content"), str)
                and 0 < len(m["content"]) <= 20_000
                for m in messages
            )
        ):
            raise InvalidInput(
                "config.messages: expected 1 to 20 messages {role: system|user|assistant, content: text}",
                field="config.messages",
            )
        if prompt is not None:
            raise InvalidInput(
                "config.messages: give a prompt or messages, not both", field="config.messages"
            )
    if prompt is not None:
        found = get_prompt(conn, project_id, prompt)
        if found is None:
            raise InvalidInput(f"config.prompt: no prompt {prompt!r} in this project", field="config.prompt")
        model = model or found.model
    if not model:
        raise InvalidInput("config.model: the judge needs a model", field="config.model")
    labels = config.get("labels")
    scale = config.get("scale")
    if labels is not None:
        if (
            not isinstance(labels, list)
            or not 2 <= len(labels) <= 20
            or not all(isinstance(x, str) and 0 < len(x) <= 100 for x in labels)
            or len({x.casefold() for x in labels}) != len(labels)
        ):
            raise InvalidInput("config.labels: expected 2 to 20 different labels", field="config.labels")
        if scale is not None:
            raise InvalidInput("config.scale: give a scale or labels, not both", field="config.scale")
    if (
        scale is not None
        and not isinstance(scale, Mapping)
        or isinstance(scale, Mapping)
        and set(scale) - {"min", "max"}
    ):
        raise InvalidInput('config.scale: expected {"min": number, "max": number}', field="config.scale")
    low, high = _number(scale or {}, "min", 0.0), _number(scale or {}, "max", 1.0)
    if low >= high:
        raise InvalidInput("config.scale: min must be below max", field="config.scale")
    return Judge(
        model=model,
        prompt=prompt,
        messages=tuple(dict(m) for m in messages) if messages is not None else None,
        low=low,
        high=high,
        labels=tuple(labels) if labels is not None else None,
        provider=provider,
    )


def _fill(text: str, variables: Mapping[str, str]) -> str:
    return _VARIABLE.sub(lambda m: variables.get(m.group(1), ""), text)


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def variables(input: str, output: str, reference: str | None, metadata: Mapping[str, Any]) -> dict[str, str]:
    """The template's variables for one generation."""
    out = {"input": _clip(input), "output": _clip(output), "reference": _clip(reference or "")}
    for key, value in metadata.items():
        if isinstance(value, Mapping):
            value = value.get("value", value.get("url", ""))
        out[f"metadata.{key}"] = _clip(value if isinstance(value, str) else orjson.dumps(value).decode())
    return out


def read_verdict(judge: Judge, text: str) -> Outcome:
    """The judge's answer as a score; :class:`Unreadable` when it is none of the kind asked for."""
    found: dict[str, Any] = {}
    # What is inside code fences (the pieces between ``` marks), then the whole answer: linear time.
    candidates = text.split("```")[1::2][:10] + [text]
    for candidate in candidates:
        start, end = candidate.find("{"), candidate.rfind("}")
        if start < 0 or end <= start:
            continue
        try:
            parsed = orjson.loads(candidate[start : end + 1])
        except orjson.JSONDecodeError:
            continue
        if isinstance(parsed, dict):
            found = {str(k).lower(): v for k, v in parsed.items()}
            break
    if not found:
        for key, value in _LINE.findall(text):
            found.setdefault(key.lower(), value.strip().strip('"'))
    reasoning = next(
        (found[k] for k in ("reasoning", "explanation", "comment", "reason") if k in found), None
    )
    comment = str(reasoning)[:2000] if reasoning is not None else None
    if judge.labels:
        said = next((found[k] for k in ("label", "verdict") if k in found), None)
        if not isinstance(said, str):
            raise Unreadable(f"the judge's answer has no label: {_quote(text)}")
        match = [label for label in judge.labels if label.casefold() == said.strip().casefold()]
        if not match:
            raise Unreadable(
                f"the judge answered the label {_quote(said)}, not one of {', '.join(judge.labels)}"
            )
        at = judge.labels.index(match[0])
        value = 1.0 - at / (len(judge.labels) - 1) if len(judge.labels) == 2 else None
        return Outcome(value, match[0], comment)
    said = next((found[k] for k in ("score", "rating", "value") if k in found), None)
    try:
        number = float(said) if not isinstance(said, bool) and said is not None else None
    except (TypeError, ValueError):
        number = None
    if number is None or number != number:
        raise Unreadable(f"the judge's answer has no score: {_quote(text)}")
    if not judge.low <= number <= judge.high:
        raise Unreadable(f"the judge's score {number:g} is outside {judge.low:g} to {judge.high:g}")
    return Outcome(number, None, comment)


def _quote(text: str) -> str:
    return repr(text if len(text) <= 120 else text[:119] + "…")


async def ask(
    judge: Judge,
    gateway: Gateway,
    caller: Caller,
    prompt: Any,
    values: Mapping[str, str],
    evaluator: str,
) -> tuple[Outcome, str | None]:
    """Ask the judge about one generation: its verdict and its own generation's id.

    ``prompt`` is the managed prompt (``store.prompts.Prompt``) when the judge uses one."""
    if prompt is not None:
        args = {arg: values.get(arg, values.get(f"metadata.{arg}", "")) for arg in prompt.args}
        body = prompt.request(args)
        template = prompt.recorded_template(args)
    else:
        messages = list(judge.messages) if judge.messages is not None else judge.default_messages()
        body = {"messages": [{"role": m["role"], "content": _fill(m["content"], values)} for m in messages]}
        template = {"name": f"judge:{evaluator}"[:200], "chat": messages, "params": dict(values)}
    if judge.model:
        body["model"] = judge.model
    body.setdefault("temperature", 0)
    context = Context(
        metadata={"tags": [JUDGE_TAG], "evaluator": evaluator[:200]},
        provider=judge.provider,
        template=template,
    )
    answer = await gateway.model_call(
        caller, "chat/completions", body, context, forward={}, default_cache="use"
    )
    try:
        parsed = orjson.loads(answer.body or b"null")
    except orjson.JSONDecodeError:
        parsed = None
    finally:
        answer.finish()  # records the judge's own generation in the background
    judge_id = answer.call.generation_id if answer.call is not None else None
    if answer.status == 429 or answer.status >= 500:
        raise RetryLater(f"the judge's provider answered {answer.status}")
    if answer.status >= 400:
        failed = parsed.get("error") if isinstance(parsed, dict) else None
        message = failed.get("message") if isinstance(failed, dict) else None
        raise Unreadable(f"the judge's call failed ({answer.status}): {str(message or '')[:300]}")
    text = answer_text("chat", parsed)
    if not isinstance(text, str):
        raise Unreadable("the judge answered no text")
    return read_verdict(judge, text), judge_id
