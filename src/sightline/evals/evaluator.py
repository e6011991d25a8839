"""An evaluator's definition, checked; and an evaluator run over generation records into score rows.

``check_definition`` reads the body of ``POST /api/evaluators`` (or the dashboard's form): every
mistake is an :class:`~sightline.errors.InvalidInput` naming the field, and nothing is saved.
:class:`Runnable` is a stored evaluator ready to run: ``score(records)`` answers the score rows of
those records (``store.evals.write_scores`` rows) — a rule's, a judge's or a function's verdict, or
a failed evaluation (an ``error`` row); a rule that does not apply to a record gives no row.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection

from ..errors import InvalidInput
from ..gateway import Caller, Gateway
from ..pipelines.sandbox import Sandbox
from ..schema import SCORE_NAME
from ..settings import Settings
from ..store import Database
from ..store.access.projects import ApiKey
from ..store.evals.evaluators import Evaluator
from ..store.mongo.filter import compile_filter
from ..store.prompts import get_prompt
from . import judge as judges
from .functions import FunctionError, FunctionEvaluator, check_function
from .rules import RULE_TYPES, Outcome, Rule, Sample, check_rule

__all__ = [
    "EVALUATOR_TYPES",
    "Definition",
    "Runnable",
    "Services",
    "check_definition",
    "sampled",
    "sample_of",
]

EVALUATOR_TYPES = (*RULE_TYPES, "llm_judge", "function")
_NAME_MAX = 200
_SCORE_NAME = re.compile(SCORE_NAME)


@dataclass(frozen=True, slots=True)
class Definition:
    name: str
    type: str
    config: dict[str, Any]
    score_name: str
    filter: dict[str, Any] | None
    sample_rate: float
    enabled: bool


@dataclass(frozen=True, slots=True)
class Services:
    """What running evaluators needs: the database, the gateway (judges), the sandbox (functions)."""

    db: Database
    gateway: Gateway
    sandbox: Sandbox
    settings: Settings


def check_filter(value: Any, field: str = "filter") -> dict[str, Any] | None:
    """A MongoDB-style filter the compiler takes (``None`` stays ``None``); InvalidInput naming it."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(f"{field}: expected a MongoDB-style filter (an object)", field=field)
    try:
        compile_filter(value)
    except InvalidInput as exc:
        raise InvalidInput(
            f"{field}: {exc.message}", field=f"{field}.{exc.field}" if exc.field else field
        ) from None
    return value


def check_rate(value: Any, field: str = "sampleRate") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InvalidInput(f"{field}: expected a number from 0 to 1", field=field)
    return float(value)


def check_config(
    conn: Connection, project_id: int, type: str, config: Any
) -> Rule | judges.Judge | FunctionEvaluator:
    """The compiled config of an evaluator of ``type``."""
    if type == "llm_judge":
        return judges.check_judge(conn, project_id, config)
    if type == "function":
        return check_function(conn, config)
    return check_rule(type, config)


def check_definition(conn: Connection, project_id: int, body: Any) -> Definition:
    """An evaluator's definition from its JSON body, checked."""
    if not isinstance(body, Mapping):
        raise InvalidInput("expected a JSON object")
    for key in sorted(set(body) - {"name", "type", "config", "filter", "sampleRate", "scoreName", "enabled"}):
        raise InvalidInput(f"{key}: unknown field of an evaluator", field=str(key))
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > _NAME_MAX or "\x00" in name:
        raise InvalidInput(f"name: expected 1 to {_NAME_MAX} characters", field="name")
    kind = body.get("type")
    if kind not in EVALUATOR_TYPES:
        raise InvalidInput(f"type: expected one of {', '.join(EVALUATOR_TYPES)}, got {kind!r}", field="type")
    config = body.get("config", {})
    if config is None:
        config = {}
    check_config(conn, project_id, kind, config)
    score_name = body.get("scoreName", name.strip())
    if not isinstance(score_name, str) or not _SCORE_NAME.fullmatch(score_name) or len(score_name) > 100:
        raise InvalidInput(
            "scoreName: a score's name is up to 100 dotted letters, digits, '_' and '-' (set scoreName "
            "when the evaluator's name is not one)",
            field="scoreName",
        )
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise InvalidInput("enabled: expected true or false", field="enabled")
    return Definition(
        name=name.strip(),
        type=kind,
        config=dict(config),
        score_name=score_name,
        filter=check_filter(body.get("filter")),
        sample_rate=check_rate(body.get("sampleRate", 1.0)),
        enabled=enabled,
    )


def sampled(evaluator_id: int, generation_id: str, rate: float) -> bool:
    """Whether online evaluation takes this generation: the same answer every time it is asked."""
    if rate >= 1:
        return True
    if rate <= 0:
        return False
    digest = hashlib.blake2b(f"{evaluator_id}:{generation_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < rate * 2**64


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(m, Mapping) and "role" in m for m in content):
        return "\n".join(f"{m['role']}: {_text(m.get('content'))}" for m in content)
    if isinstance(content, list) and all(isinstance(p, Mapping) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text", "")) for p in content)
    return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS).decode()


def reference_of(record: Mapping[str, Any]) -> str | None:
    """A record's reference answer: its metadata ``reference``, else its feedback's betterResponse."""
    meta = record.get("metadata") or {}
    ref = meta.get("reference")
    if isinstance(ref, Mapping):
        ref = ref.get("value")
    if isinstance(ref, str):
        return ref
    better = (record.get("feedback") or {}).get("betterResponse")
    return better if isinstance(better, str) else None


def sample_of(record: Mapping[str, Any], reference: str | None = None) -> Sample:
    """What a rule looks at in a generation record."""
    usage = record.get("usage") or {}
    performance = record.get("performance") or {}
    return Sample(
        output=_text((record.get("output") or {}).get("content")),
        input=_text((record.get("input") or {}).get("content")),
        reference=reference if reference is not None else reference_of(record),
        latency_ms=performance.get("latency"),
        cost=usage.get("cost"),
        total_tokens=usage.get("totalTokens"),
    )


def evaluator_caller(project_id: int, environment: str) -> Caller:
    """The gateway's caller for an evaluator's judge calls (a job has no API key of its own)."""
    key = ApiKey(0, project_id, "", environment, "evaluator", "evaluator", "", 0, None)
    return Caller(key, _CALLER_SECRET)


_CALLER_SECRET = hashlib.blake2b(str(time.time_ns()).encode()).hexdigest()  # signs feedback keys nobody reads


@dataclass
class Runnable:
    """A stored evaluator compiled to run: its rule, judge (and managed prompt) or function."""

    evaluator: Evaluator
    check: Rule | judges.Judge | FunctionEvaluator
    prompt: Any = None

    @classmethod
    def load(cls, conn: Connection, evaluator: Evaluator) -> Runnable:
        check = check_config(conn, evaluator.project_id, evaluator.type, evaluator.config)
        prompt = None
        if isinstance(check, judges.Judge) and check.prompt is not None:
            prompt = get_prompt(conn, evaluator.project_id, check.prompt)
        return cls(evaluator, check, prompt)

    @property
    def source(self) -> str:
        return "llm" if self.evaluator.type == "llm_judge" else "rule"

    def _row(
        self,
        record: Mapping[str, Any],
        outcome: Outcome | None,
        *,
        error: str | None = None,
        judge_id: str | None = None,
        now_us: int,
    ) -> dict[str, Any]:
        ev = self.evaluator
        body: dict[str, Any] = {"evaluator": ev.name}
        if judge_id:
            body["judgeGenerationId"] = judge_id
        return {
            "project_id": ev.project_id,
            "environment": record.get("environment") or "default",
            "generation_id": record["id"],
            "run_id": None,
            "name": ev.score_name,
            "value": outcome.value if outcome else None,
            "label": outcome.label if outcome else None,
            "comment": outcome.comment if outcome else None,
            "source": self.source,
            "evaluator_id": ev.id,
            "evaluator_version": ev.version,
            "error": error[:4000] if error else None,
            "ts_us": now_us,
            "body": body,
        }

    async def score(
        self,
        services: Services,
        records: Sequence[Mapping[str, Any]],
        references: Mapping[str, str | None] | None = None,
    ) -> list[dict[str, Any]]:
        """The score rows of ``records``; :class:`judge.RetryLater` when the judge cannot be asked now."""
        now_us = time.time_ns() // 1000
        check = self.check
        refs = references or {}
        if not isinstance(check, judges.Judge | FunctionEvaluator):
            rows = []
            for record in records:
                outcome = check.evaluate(sample_of(record, refs.get(record["id"])))
                if outcome.applies:
                    rows.append(self._row(record, outcome, now_us=now_us))
            return rows
        limit = asyncio.Semaphore(services.settings.eval_concurrency)

        async def one(record: Mapping[str, Any]) -> dict[str, Any]:
            async with limit:
                sample = sample_of(record, refs.get(record["id"]))
                try:
                    if isinstance(check, judges.Judge):
                        values = judges.variables(
                            sample.input, sample.output, sample.reference, record.get("metadata") or {}
                        )
                        caller = evaluator_caller(
                            self.evaluator.project_id, record.get("environment") or "default"
                        )
                        outcome, judge_id = await judges.ask(
                            check, services.gateway, caller, self.prompt, values, self.evaluator.name
                        )
                        return self._row(record, outcome, judge_id=judge_id, now_us=now_us)
                    arguments = {
                        "output": sample.output,
                        "input": sample.input,
                        "reference": sample.reference,
                        "metadata": record.get("metadata") or {},
                        "record": dict(record),
                    }
                    functions_dir = services.settings.functions_dir
                    outcome = await check.evaluate(
                        services.sandbox,
                        Path(functions_dir) if functions_dir else None,
                        services.settings.pipeline_function_timeout,
                        arguments,
                    )
                    return self._row(record, outcome, now_us=now_us)
                except (judges.Unreadable, FunctionError) as exc:
                    return self._row(record, None, error=str(exc), now_us=now_us)

        return list(await asyncio.gather(*(one(r) for r in records)))
