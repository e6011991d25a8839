"""Wire models shared by the SDK and the server.

Field names on the wire are camelCase (``promptTokens``); Python code uses snake_case attributes.
These models are the one definition of what a Generation, Run or Feedback is: the SDK builds them,
the server validates every request body with them, and the store flattens them into rows.

Only ``pydantic`` is needed here (the ``openai`` package already depends on it), so the SDK can
import this module without any server dependency.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
    with_config,
)
from pydantic.alias_generators import to_camel
from typing_extensions import TypedDict

from .ids import new_id

__all__ = [
    "KNOWN_METADATA_KEYS",
    "MAX_MEASURE",
    "MAX_METADATA_KEYS",
    "Error",
    "Feedback",
    "Generation",
    "IngestBatch",
    "IngestItem",
    "Input",
    "Metadata",
    "ModelRef",
    "Output",
    "Performance",
    "Run",
    "RunStep",
    "SCORE_NAME",
    "SCORE_SOURCES",
    "Score",
    "ScoreItem",
    "Template",
    "Usage",
    "metadata_value_text",
    "normalize_metadata",
    "utc",
]

# Metadata keys with a fixed meaning; every other key is a custom, typed MetadataValue.
KNOWN_METADATA_KEYS = frozenset(
    {"requestId", "userId", "sessionId", "functionId", "workflowId", "agentId", "tags"}
)
_MAX_ID = 200
_COLUMN_KEYS = frozenset({"userId", "sessionId"})  # also stored in indexed columns of at most _MAX_ID
_MAX_INT = 2**31 - 1  # token counts and indexes are 32-bit columns
Count = Annotated[int, Field(ge=0, le=_MAX_INT)]
# Durations (ms), speeds and costs go into columns and the rollups' sums and histograms: 1e12 (31
# years in milliseconds, or a trillion dollars) is past any real call and keeps a latency's histogram
# bin within a 32-bit column; a larger number (1e100 overflowed the rollups) is refused naming its field.
MAX_MEASURE = 1e12
Measure = Annotated[float, Field(ge=0, le=MAX_MEASURE)]
# Most metadata keys a generation or run may carry (each tag counts as one): each is a row of the
# metadata index. The server passes its setting (``max_metadata_keys``) in the validation context.
MAX_METADATA_KEYS = 100


def utc(value: datetime) -> datetime:
    """The same instant as an aware UTC datetime (naive values are taken as UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:01+20:00 is before year 1 in UTC (a ValueError is a 4xx)
        raise ValueError("the instant in UTC is outside years 1-9999") from None


def _now() -> datetime:
    return datetime.now(UTC)


def _typed_value(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"type": "boolean", "value": value}
    if isinstance(value, str):
        return {"type": "string", "value": value}
    if isinstance(value, int | float):
        return {"type": "string", "value": repr(value) if isinstance(value, float) else str(value)}
    if not isinstance(value, dict):
        raise ValueError(
            f"metadata key '{key}': expected a string, number, boolean or typed value, "
            f"got {type(value).__name__}"
        )
    kind = value.get("type")
    if kind == "string":
        if not isinstance(value.get("value"), str) or set(value) - {"type", "value"}:
            raise ValueError(f"metadata key '{key}': a string value needs 'value' as a string")
        return {"type": "string", "value": value["value"]}
    if kind == "boolean":
        if not isinstance(value.get("value"), bool) or set(value) - {"type", "value"}:
            raise ValueError(f"metadata key '{key}': a boolean value needs 'value' as true or false")
        return {"type": "boolean", "value": value["value"]}
    if kind == "url":
        url, text = value.get("url"), value.get("text")
        if not isinstance(url, str) or not url:
            raise ValueError(f"metadata key '{key}': a url value needs 'url' as a non-empty string")
        if not isinstance(text, str):
            raise ValueError(f"metadata key '{key}': a url value needs 'text' as a string")
        if set(value) - {"type", "url", "text"}:
            raise ValueError(f"metadata key '{key}': a url value takes only 'url' and 'text'")
        return {"type": "url", "url": url, "text": text}
    raise ValueError(f"metadata key '{key}': unknown type {kind!r} (expected 'string', 'url' or 'boolean')")


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _plain_key(key: str) -> bool:
    return 0 < len(key) <= _MAX_ID and "\x00" not in key


def normalize_metadata(raw: Any, max_keys: int = MAX_METADATA_KEYS) -> dict[str, Any]:
    """Validate metadata and store every custom value typed.

    Known keys (``userId``, ``tags``, …) keep their plain form; a custom key takes a typed value
    (``{"type": "string"|"url"|"boolean", …}``) or a plain string, number or boolean, which is
    stored typed. Anything else raises ``ValueError`` naming the key. More than ``max_keys`` keys
    (each tag counting as one) raise ``ValueError`` naming the limit.
    """
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError("metadata must be an object")
    tags = raw.get("tags")
    count = len(raw) + (len(tags) - 1 if isinstance(tags, list) and tags else 0)
    if count > max_keys:
        raise ValueError(f"at most {max_keys} metadata keys (each tag counts as one) per record, got {count}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        plain = type(value) is str and type(key) is str and key not in KNOWN_METADATA_KEYS
        if plain and _plain_key(key) and "\x00" not in value:  # the common case, first
            out[key] = {"type": "string", "value": value}
            continue
        if not isinstance(key, str) or not _plain_key(key):
            raise ValueError(
                f"metadata key {key!r} must be a non-empty string of at most {_MAX_ID} characters"
            )
        if value is None:
            continue
        if _has_nul(value):
            # Metadata is indexed as text, and database text cannot hold NUL.
            raise ValueError(f"metadata key '{key}': must not contain NUL characters")
        if key == "tags":
            if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
                raise ValueError("metadata key 'tags': expected a list of strings")
            out[key] = list(value)
        elif key in KNOWN_METADATA_KEYS:
            if not isinstance(value, str | int) or isinstance(value, bool):
                raise ValueError(f"metadata key '{key}': expected a string")
            out[key] = str(value)
            if key in _COLUMN_KEYS and len(out[key]) > _MAX_ID:
                raise ValueError(f"metadata key '{key}': at most {_MAX_ID} characters")
        else:
            out[key] = _typed_value(key, value)
    return out


def metadata_value_text(value: Any) -> str:
    """The text a metadata value is filtered and shown by (a url's address, 'true'/'false', …)."""
    if isinstance(value, dict):
        if value.get("type") == "url":
            return str(value["url"])
        inner = value.get("value")
        if isinstance(inner, bool):
            return "true" if inner else "false"
        return str(inner)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _metadata(raw: Any, info: ValidationInfo) -> dict[str, Any]:
    context = info.context
    if context is None:
        return normalize_metadata(raw)
    return normalize_metadata(raw, context.get("max_metadata_keys", MAX_METADATA_KEYS))


Metadata = Annotated[dict[str, Any], BeforeValidator(_metadata)]


IdText = Annotated[str, Field(min_length=1, max_length=_MAX_ID, pattern=r"^[^\x00]*$")]


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _uuid_lower(value: str) -> str:
    # A UUID is one id however it is cased (the SDK's are lower case already): the cheap tests first,
    # since ingest validates tens of thousands a second.
    if len(value) == 36 and not value.islower() and _UUID.fullmatch(value):
        return value.lower()
    return value


# A generation's id, chosen by the client: any text of 1 to 200 characters (the Generations document
# types it as a string), a UUID in lower case.
GenerationId = Annotated[IdText, AfterValidator(_uuid_lower)]
# Text stored in an indexed column as well as in the record: bounded, and free of NUL (which database
# text cannot hold).
ColumnText = Annotated[str, Field(max_length=_MAX_ID, pattern=r"^[^\x00]*$")]
UTCDateTime = Annotated[datetime, AfterValidator(utc)]


class Wire(BaseModel):
    """Base of the wire models: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", allow_inf_nan=False
    )

    def wire(self) -> dict[str, Any]:
        """This record as it travels: camelCase keys, JSON types, unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Open(Wire):
    """A wire model that also keeps fields it does not know (model parameters, …)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", allow_inf_nan=False
    )


# The parts of a Generation are typed dicts in their wire form (camelCase keys), not models: pydantic
# validates them in Rust without building an object per part, which halves the cost of validating
# a generation at ingest. Their defaults are filled in by the store when it writes the record.
_FORBID = ConfigDict(extra="forbid", allow_inf_nan=False)
_ALLOW = ConfigDict(extra="allow", allow_inf_nan=False)


@with_config(_FORBID)
class ModelRef(TypedDict):
    id: IdText
    name: NotRequired[str | None]
    version: NotRequired[str | None]
    provider: NotRequired[ColumnText | None]


@with_config(_FORBID)
class Input(TypedDict):
    type: NotRequired[Literal["text", "image", "audio", "multimodal"]]  # default "text"
    content: NotRequired[str | list[Any] | dict[str, Any] | None]
    tokens: NotRequired[Count | None]


@with_config(_FORBID)
class Alternative(TypedDict):
    content: NotRequired[Any]
    tokens: NotRequired[Count | None]
    score: NotRequired[float | None]


@with_config(_FORBID)
class Output(TypedDict):
    type: NotRequired[Literal["text", "image", "audio", "code", "json", "other"]]  # default "text"
    content: NotRequired[Any]
    tokens: NotRequired[Count | None]
    alternatives: NotRequired[list[Alternative] | None]


@with_config(_ALLOW)
class Parameters(TypedDict):
    """Model parameters: these are checked, any other (``seed``, ``responseFormat``, …) is kept."""

    temperature: NotRequired[Annotated[float, Field(ge=0)] | None]
    topP: NotRequired[Annotated[float, Field(ge=0, le=1)] | None]
    maxTokens: NotRequired[Count | None]
    stopSequences: NotRequired[list[str] | None]
    presencePenalty: NotRequired[float | None]
    frequencyPenalty: NotRequired[float | None]


@with_config(_FORBID)
class Usage(TypedDict):
    promptTokens: NotRequired[Count]  # default 0
    completionTokens: NotRequired[Count]  # default 0
    totalTokens: NotRequired[Count | None]  # default promptTokens + completionTokens
    cachedTokens: NotRequired[Count | None]
    reasoningTokens: NotRequired[Count | None]
    cost: NotRequired[Measure | None]  # default: priced by the server
    costSaved: NotRequired[Measure | None]
    currency: NotRequired[str | None]


@with_config(_FORBID)
class Performance(TypedDict):
    latency: NotRequired[Measure]  # milliseconds, default 0
    timeToFirstToken: NotRequired[Measure | None]  # milliseconds
    tokensPerSecond: NotRequired[Measure | None]


@with_config(_ALLOW)
class TemplateMessage(TypedDict):
    role: str
    content: NotRequired[Any]


@with_config(_FORBID)
class Template(TypedDict):
    name: NotRequired[ColumnText | None]
    version: NotRequired[ColumnText | None]
    chat: NotRequired[list[TemplateMessage] | None]
    text: NotRequired[str | None]
    params: NotRequired[dict[str, Any] | None]


class Error(Wire):
    type: ColumnText = "error"
    message: str = ""
    status_code: Annotated[int, Field(ge=0, le=999)] | None = None


class Feedback(Wire):
    """Feedback on one generation. At least one of its judgements must be given."""

    generation_id: GenerationId | None = None
    rating: int | None = Field(default=None, ge=1, le=5)
    score: float | None = Field(default=None, ge=0, le=1)
    thumbs: Literal["up", "down"] | None = None
    comment: str | None = Field(default=None, max_length=20_000)
    categories: list[str] | None = None
    better_response: str | None = None
    user_id: str | None = Field(default=None, max_length=_MAX_ID)
    timestamp: UTCDateTime = Field(default_factory=_now)

    @model_validator(mode="after")
    def _says_something(self) -> Feedback:
        if all(
            getattr(self, name) is None
            for name in ("rating", "score", "thumbs", "comment", "categories", "better_response")
        ):
            raise ValueError(
                "feedback needs at least one of rating, score, thumbs, comment, categories, betterResponse"
            )
        return self


SCORE_SOURCES = ("human", "rule", "llm", "api")
# A score's name is a field path's part of ``scores.<name>``: dotted names of letters, digits, _ and -.
SCORE_NAME = r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$"
_SCORE_SUBFIELDS = ("value", "label", "comment", "source")


def _score_name(name: str) -> str:
    if name.rsplit(".", 1)[-1] in _SCORE_SUBFIELDS and "." in name:
        raise ValueError(
            f"a score's name may not end in .{name.rsplit('.', 1)[-1]} (scores.<name>.value reads it)"
        )
    return name


ScoreName = Annotated[
    str, Field(min_length=1, max_length=100, pattern=SCORE_NAME), AfterValidator(_score_name)
]


class Score(Wire):
    """A named judgement of one generation or one run: a number, a label, or both."""

    generation_id: GenerationId | None = None
    run_id: IdText | None = None
    name: ScoreName
    value: Annotated[float, Field(ge=-MAX_MEASURE, le=MAX_MEASURE, allow_inf_nan=False)] | None = None
    label: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00]*$")] | None = None
    comment: Annotated[str, Field(max_length=20_000, pattern=r"^[^\x00]*$")] | None = None
    source: Literal["human", "rule", "llm", "api"] = "api"
    evaluator: ColumnText | None = None
    evaluator_version: Count | None = None
    timestamp: UTCDateTime = Field(default_factory=_now)

    @model_validator(mode="after")
    def _one_target_something_said(self) -> Score:
        if (self.generation_id is None) == (self.run_id is None):
            raise ValueError("a score names exactly one of generationId and runId")
        if self.value is None and self.label is None:
            raise ValueError("a score needs a value, a label, or both")
        return self


class Generation(Wire):
    """One model call, as DESIGN.md describes it."""

    id: GenerationId = Field(default_factory=lambda: new_id()[0])
    timestamp: UTCDateTime = Field(default_factory=_now)
    model: ModelRef
    input: Input = Field(default_factory=lambda: Input())
    output: Output = Field(default_factory=lambda: Output())
    parameters: Parameters = Field(default_factory=lambda: Parameters())
    usage: Usage = Field(default_factory=lambda: Usage())
    metadata: Metadata = Field(default_factory=dict)
    performance: Performance = Field(default_factory=lambda: Performance())
    template: Template | None = None
    run_id: IdText | None = None
    chat_id: IdText | None = None
    step_index: Count | None = None
    status: Literal["ok", "error"] = "ok"
    error: Error | None = None
    cache_hit: bool = False
    feedback: Feedback | None = None


class RunStep(Open):
    """A step of a run that is not a model call (a tool, a Python function, …)."""

    name: str = Field(min_length=1, max_length=_MAX_ID)
    step_index: Count | None = None
    inputs: Any = None
    outputs: Any = None
    started_at: UTCDateTime | None = None
    ended_at: UTCDateTime | None = None
    status: Literal["ok", "error"] = "ok"
    error: Error | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_user(cls, value: Any) -> Any:
        if isinstance(value, dict) and ("userId" in value or "user_id" in value):
            raise ValueError("a step cannot set userId: it belongs to the run (set it when the run starts)")
        return value


class Run(Wire):
    """A pipeline run or chain: its userId and metadata belong to the run and all its steps."""

    id: IdText
    pipeline_slug: str | None = Field(default=None, max_length=_MAX_ID)
    user_id: str | None = Field(default=None, max_length=_MAX_ID)
    metadata: Metadata = Field(default_factory=dict)
    started_at: UTCDateTime = Field(default_factory=_now)
    ended_at: UTCDateTime | None = None
    status: Literal["running", "ok", "error"] = "running"
    error: Error | None = None
    steps: list[RunStep] | None = None
    # What the run produced (a chain's result, a pipeline's answer): any JSON value.
    output: Any = None


class GenerationItem(Wire):
    type: Literal["generation"]
    body: Generation


class RunItem(Wire):
    type: Literal["run"]
    body: Run


class FeedbackItem(Wire):
    type: Literal["feedback"]
    body: Feedback


class ScoreItem(Wire):
    type: Literal["score"]
    body: Score


IngestItem = Annotated[GenerationItem | RunItem | FeedbackItem | ScoreItem, Field(discriminator="type")]


class IngestBatch(Wire):
    """The body of ``POST /api/ingest``: validated in one pass when every item is valid.

    How many items one request may hold is the server's setting ``max_ingest_items``."""

    batch: list[IngestItem]
