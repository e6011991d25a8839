"""OpenTelemetry traces (OTLP/HTTP, protobuf or JSON) in Sightline's wire models.

Each trace becomes a :class:`~sightline.schema.Run` (its id: the trace id in hex), and its spans are
read in time order:

* a span that describes a model call becomes a :class:`~sightline.schema.Generation` (through
  :func:`sightline.mapping.generation`, the one mapping of an OpenAI call), a step of the run. Three
  vocabularies are read:

  - OpenTelemetry's GenAI semantic conventions: ``gen_ai.system`` / ``gen_ai.provider.name``,
    ``gen_ai.request.model``, ``gen_ai.response.model``, ``gen_ai.request.*`` parameters,
    ``gen_ai.usage.input_tokens``/``output_tokens`` (and ``prompt_tokens``/``completion_tokens``), the
    messages as 1.36 wrote them (``gen_ai.prompt.N.role|content``, ``gen_ai.completion.N.*``), as the
    current conventions do (``gen_ai.input.messages`` / ``gen_ai.output.messages`` JSON with ``parts``,
    ``gen_ai.system_instructions``), or as events (``gen_ai.user.message``, ``gen_ai.choice``, ...);
  - OpenInference's: ``openinference.span.kind`` = ``LLM``, ``llm.model_name``, ``llm.provider``,
    ``llm.input_messages.N.message.role|content``, ``llm.output_messages.N.message.*``,
    ``llm.invocation_parameters``, ``llm.token_count.prompt|completion``, ``input.value``/``output.value``;
  - gentrace 1.x's: spans of ``gentrace.pipeline_id`` (the run's pipeline) whose function calls carry
    ``gentrace.fn.args`` / ``gentrace.fn.output`` events;

* every other span is a step of the run with its name, inputs and outputs (``input.value``,
  ``output.value``, gentrace's function events), times, status, and its span and parent span ids, so a
  tree can be drawn.

``user.id`` and ``session.id`` on any span of a trace set the run's user (so its generations are found by
user, as every run's are) and session. The service name and the resource's attributes become metadata,
bounded (:data:`MAX_RESOURCE_KEYS` keys, values cut at :data:`MAX_VALUE`). A span that cannot be read is
refused alone (counted in the answer's ``rejected_spans``); the others are kept. Pure: leaves only.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from google.protobuf import json_format  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from pydantic import ValidationError

from sightline.errors import InvalidInput, PayloadTooLarge
from sightline.mapping import generation
from sightline.schema import Error, Generation, Run, RunStep

__all__ = ["MAX_RESOURCE_KEYS", "Traces", "parse", "translate"]

MAX_RESOURCE_KEYS = 50
MAX_VALUE = 500
_MAX_TEXT = 200_000  # characters of one attribute's text kept
_NAMESPACE = uuid.UUID("3f2b7a9e-5c1d-4e8a-9b6f-0d7c2e4a1b58")
_ERROR = 2  # Status.STATUS_CODE_ERROR
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")
_PARAMETERS = {
    "temperature": "temperature",
    "max_tokens": "max_tokens",
    "top_p": "top_p",
    "top_k": "top_k",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "seed": "seed",
    "stop_sequences": "stop",
}
_EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


@dataclass
class Traces:
    """What one export request holds: per trace, its run and generations; how many spans were refused."""

    runs: list[Run] = field(default_factory=list)
    generations: list[Generation] = field(default_factory=list)
    spans: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)

    def refuse(self, count: int, why: str) -> None:
        self.rejected += count
        if len(self.errors) < 5:
            self.errors.append(why)


def _hex_to_b64(value: Any, name: str) -> Any:
    if not isinstance(value, str) or not value:
        return value
    try:
        return base64.b64encode(bytes.fromhex(value)).decode()
    except ValueError:
        raise InvalidInput(f"{name}: expected hex text (OTLP/JSON encodes ids as hex)", field=name) from None


def parse(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    """An ExportTraceServiceRequest from its protobuf or OTLP/JSON body (ids in hex, enums as numbers)."""
    request = ExportTraceServiceRequest()
    if "json" in content_type:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"body: not valid JSON ({exc})", field="body") from None
        if not isinstance(data, dict):
            raise InvalidInput("body: expected an ExportTraceServiceRequest object", field="body")
        for resource in data.get("resourceSpans") or []:
            for scope in (resource or {}).get("scopeSpans") or [] if isinstance(resource, dict) else []:
                for span in (scope or {}).get("spans") or [] if isinstance(scope, dict) else []:
                    if isinstance(span, dict):
                        for name in _ID_FIELDS:
                            if name in span:
                                span[name] = _hex_to_b64(span[name], name)
                        for link in span.get("links") or []:
                            if isinstance(link, dict):
                                for name in ("traceId", "spanId"):
                                    if name in link:
                                        link[name] = _hex_to_b64(link[name], name)
        try:
            json_format.ParseDict(data, request, ignore_unknown_fields=True)
        except (json_format.ParseError, TypeError, ValueError, RecursionError) as exc:
            raise InvalidInput(
                f"body: not an OTLP/JSON trace export ({str(exc)[:200]})", field="body"
            ) from None
        return request
    try:
        request.ParseFromString(body)
    except (DecodeError, RecursionError, ValueError):
        raise InvalidInput("body: not an OTLP protobuf ExportTraceServiceRequest", field="body") from None
    return request


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "string_value":
        text = any_value.string_value
        return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT]
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(any_value.bytes_value).decode()
    if kind == "int_value":
        return int(any_value.int_value)
    return getattr(any_value, kind)


def _attributes(items: Iterable[Any]) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in items}


def _json(value: Any) -> Any:
    """A JSON text attribute as its value (OpenInference and GenAI put messages there); else as it is."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _serialized(value: Any) -> Any:
    """A value gentrace wrote as JSON text (any JSON: ``"text"`` too), decoded; else as it is."""
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _number(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if 0 <= number < 2**31 else None


def _indexed(attrs: Mapping[str, Any], prefix: str, suffix: str = "") -> list[dict[str, Any]]:
    """``prefix.N.<field>`` attributes (``gen_ai.prompt.0.role``...) as a list of dicts, in N order."""
    found: dict[int, dict[str, Any]] = {}
    start = prefix + "."
    for key, value in attrs.items():
        if not key.startswith(start):
            continue
        index, _, rest = key[len(start) :].partition(".")
        if not index.isdigit() or not rest:
            continue
        if suffix:
            if not rest.startswith(suffix + "."):
                continue
            rest = rest[len(suffix) + 1 :]
        found.setdefault(int(index), {})[rest] = value
    return [found[i] for i in sorted(found)]


def _parts_text(message: Mapping[str, Any]) -> Any:
    """The content of a current-conventions message (``parts``: text parts joined; others as they are)."""
    if "content" in message:
        return message["content"]
    parts = message.get("parts")
    if not isinstance(parts, list):
        return None
    texts = [p.get("content") for p in parts if isinstance(p, dict) and p.get("type") == "text"]
    if texts and len(texts) == len(parts):
        return "".join(str(t) for t in texts)
    return parts


def _messages(
    attrs: Mapping[str, Any], events: list[tuple[str, dict[str, Any]]]
) -> tuple[list[Any], list[Any]]:
    """(input messages, output messages) of a model span, in whichever vocabulary it used."""
    inputs: list[Any] = []
    outputs: list[Any] = []
    # OpenInference
    for m in _indexed(attrs, "llm.input_messages", "message"):
        inputs.append({"role": m.get("role", "user"), "content": m.get("content")})
    for m in _indexed(attrs, "llm.output_messages", "message"):
        outputs.append({"role": m.get("role", "assistant"), "content": m.get("content")})
    # GenAI 1.36 (and older)
    if not inputs:
        for m in _indexed(attrs, "gen_ai.prompt"):
            inputs.append({"role": m.get("role", "user"), "content": m.get("content")})
    if not outputs:
        for m in _indexed(attrs, "gen_ai.completion"):
            outputs.append({"role": m.get("role", "assistant"), "content": m.get("content")})
    # GenAI current
    if not inputs:
        system = _json(attrs.get("gen_ai.system_instructions"))
        if isinstance(system, list):
            inputs.append({"role": "system", "content": _parts_text({"parts": system})})
        given = _json(attrs.get("gen_ai.input.messages"))
        if isinstance(given, list):
            for m in given:
                if isinstance(m, dict):
                    inputs.append({"role": m.get("role", "user"), "content": _parts_text(m)})
    if not outputs:
        given = _json(attrs.get("gen_ai.output.messages"))
        if isinstance(given, list):
            for m in given:
                if isinstance(m, dict):
                    outputs.append({"role": m.get("role", "assistant"), "content": _parts_text(m)})
    # GenAI events
    if not inputs:
        for name, event_attrs in events:
            role = _EVENT_ROLES.get(name)
            if role is not None:
                inputs.append({"role": role, "content": _json(event_attrs.get("content"))})
    if not outputs:
        for name, event_attrs in events:
            if name == "gen_ai.choice":
                message = _json(event_attrs.get("message"))
                if isinstance(message, dict):
                    outputs.append(
                        {"role": message.get("role", "assistant"), "content": message.get("content")}
                    )
    # OpenInference's whole input and output, when no messages were given
    if not inputs and "input.value" in attrs:
        value = _json(attrs["input.value"])
        found = value.get("messages") if isinstance(value, dict) else None
        inputs = (
            list(found) if isinstance(found, list) else [{"role": "user", "content": attrs["input.value"]}]
        )
    if not outputs and "output.value" in attrs:
        value = _json(attrs["output.value"])
        choices = value.get("choices") if isinstance(value, dict) else None
        if isinstance(choices, list) and choices and isinstance(choices[0], dict) and "message" in choices[0]:
            outputs = [choices[0]["message"]]
        else:
            outputs = [{"role": "assistant", "content": attrs["output.value"]}]
    return inputs, outputs


def _is_model_call(attrs: Mapping[str, Any]) -> bool:
    kind = attrs.get("openinference.span.kind")
    if isinstance(kind, str):
        return kind.upper() in ("LLM", "EMBEDDING")
    return (
        any(
            key in attrs
            for key in (
                "gen_ai.request.model",
                "gen_ai.response.model",
                "gen_ai.system",
                "gen_ai.provider.name",
            )
        )
        or "llm.model_name" in attrs
    )


def _parameters(attrs: Mapping[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    invocation = _json(attrs.get("llm.invocation_parameters"))
    if isinstance(invocation, dict):
        params.update({k: v for k, v in invocation.items() if k not in ("model", "messages", "stream")})
    for key, name in _PARAMETERS.items():
        value = attrs.get(f"gen_ai.request.{key}")
        if value is not None:
            params[name] = value
    return params


def _when(nanos: int) -> datetime:
    try:
        return datetime.fromtimestamp(nanos / 1e9, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError("span times: not a time") from None


def _generation(
    span: Any,
    attrs: dict[str, Any],
    events: list[tuple[str, dict[str, Any]]],
    trace_id: str,
    index: int,
    metadata: dict[str, Any],
) -> Generation:
    model = (
        attrs.get("gen_ai.request.model")
        or attrs.get("llm.model_name")
        or attrs.get("gen_ai.response.model")
        or "unknown"
    )
    provider = (
        attrs.get("gen_ai.provider.name")
        or attrs.get("gen_ai.system")
        or attrs.get("llm.provider")
        or attrs.get("llm.system")
    )
    inputs, outputs = _messages(attrs, events)
    embedding = (
        str(attrs.get("openinference.span.kind", "")).upper() == "EMBEDDING"
        or attrs.get("gen_ai.operation.name") == "embeddings"
    )
    kind = "embedding" if embedding else "chat"
    request: dict[str, Any] = {"model": str(model), **_parameters(attrs)}
    if kind == "chat":
        request["messages"] = inputs
    else:
        request["input"] = inputs
    prompt_tokens = _number(
        attrs.get(
            "gen_ai.usage.input_tokens",
            attrs.get("gen_ai.usage.prompt_tokens", attrs.get("llm.token_count.prompt")),
        )
    )
    completion_tokens = _number(
        attrs.get(
            "gen_ai.usage.output_tokens",
            attrs.get("gen_ai.usage.completion_tokens", attrs.get("llm.token_count.completion")),
        )
    )
    answer: dict[str, Any] = {
        "model": attrs.get("gen_ai.response.model") or attrs.get("llm.model_name") or model,
        "choices": [
            {"index": i, "message": m}
            for i, m in enumerate(outputs[:1] or [{"role": "assistant", "content": None}])
        ],
    }
    if prompt_tokens is not None or completion_tokens is not None:
        answer["usage"] = {"prompt_tokens": prompt_tokens or 0, "completion_tokens": completion_tokens or 0}
    error = None
    if span.status.code == _ERROR:
        error = {"type": str(attrs.get("error.type") or "error"), "message": span.status.message[:2000]}
    span_id = span.span_id.hex()
    body = generation(
        kind,
        request,
        answer,
        generation_id=str(uuid.uuid5(_NAMESPACE, f"{trace_id}/{span_id}")),
        timestamp=_when(span.start_time_unix_nano),
        started=span.start_time_unix_nano / 1e9,
        ended=max(span.start_time_unix_nano, span.end_time_unix_nano) / 1e9,
        provider=str(provider) if provider else None,
        error=error,
        metadata={
            **metadata,
            "spanId": span_id,
            **({"parentSpanId": span.parent_span_id.hex()} if span.parent_span_id else {}),
        },
    )
    body["runId"] = trace_id
    body["stepIndex"] = index
    session = attrs.get("session.id")
    if isinstance(session, str) and session:
        body["metadata"]["sessionId"] = session[:200]
    return Generation.model_validate(body)


def _step(span: Any, attrs: dict[str, Any], events: list[tuple[str, dict[str, Any]]], index: int) -> RunStep:
    inputs: Any = _json(attrs.get("input.value"))
    outputs: Any = _json(attrs.get("output.value"))
    for name, event_attrs in events:
        if name == "gentrace.fn.args":
            inputs = _serialized(event_attrs.get("args", event_attrs))
        elif name == "gentrace.fn.output":
            outputs = _serialized(event_attrs.get("output", event_attrs))
    body: dict[str, Any] = {
        "name": (span.name or "span")[:200],
        "stepIndex": index,
        "inputs": inputs,
        "outputs": outputs,
        "startedAt": _when(span.start_time_unix_nano),
        "endedAt": _when(max(span.start_time_unix_nano, span.end_time_unix_nano)),
        "spanId": span.span_id.hex(),
    }
    if span.parent_span_id:
        body["parentSpanId"] = span.parent_span_id.hex()
    if span.status.code == _ERROR:
        body["status"] = "error"
        body["error"] = {"type": "error", "message": span.status.message[:2000]}
    return RunStep.model_validate(body)


def _resource_metadata(attrs: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if len(out) >= MAX_RESOURCE_KEYS:
            break
        if not key or len(key) > 200:
            continue
        text = (
            value if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
        )
        out[key] = text[:MAX_VALUE]
    return out


def translate(request: ExportTraceServiceRequest, *, max_spans: int) -> Traces:
    """The runs and generations of an export request (see the module's docstring)."""
    out = Traces()
    by_trace: dict[bytes, list[tuple[Any, dict[str, Any]]]] = {}
    for resource_spans in request.resource_spans:
        resource = _resource_metadata(_attributes(resource_spans.resource.attributes))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                out.spans += 1
                if out.spans > max_spans:
                    raise PayloadTooLarge(
                        f"resourceSpans: more than {max_spans} spans in one request (setting otlp_max_spans)",
                        field="resourceSpans",
                    )
                if len(span.trace_id) != 16 or len(span.span_id) != 8:
                    out.refuse(1, f"span {span.name[:60]!r}: trace id of 16 bytes and span id of 8 required")
                    continue
                by_trace.setdefault(span.trace_id, []).append((span, resource))
    for trace, spans in by_trace.items():
        trace_id = binascii.hexlify(trace).decode()
        spans.sort(key=lambda pair: (pair[0].start_time_unix_nano, pair[0].end_time_unix_nano))
        user_id = session_id = pipeline = None
        read: list[tuple[Any, dict[str, Any], list[tuple[str, dict[str, Any]]], dict[str, Any]]] = []
        for span, resource in spans:
            attrs = _attributes(span.attributes)
            events = [(e.name, _attributes(e.attributes)) for e in span.events]
            user_id = user_id or _text(attrs.get("user.id"))
            session_id = session_id or _text(attrs.get("session.id"))
            pipeline = (
                pipeline
                or _text(attrs.get("gentrace.pipeline_id"))
                or _text(attrs.get("gentrace.pipeline.slug"))
            )
            read.append((span, attrs, events, resource))
        steps: list[RunStep] = []
        gens: list[Generation] = []
        first = spans[0][0].start_time_unix_nano
        last = max(s.end_time_unix_nano for s, _ in spans)
        failed = False
        for index, (span, attrs, events, resource) in enumerate(read):
            metadata = dict(resource)
            try:
                if _is_model_call(attrs):
                    gens.append(_generation(span, attrs, events, trace_id, index, metadata))
                else:
                    steps.append(_step(span, attrs, events, index))
                failed = failed or span.status.code == _ERROR
            except (ValidationError, ValueError) as exc:
                out.refuse(1, f"span {span.name[:60]!r}: {str(exc).splitlines()[0][:200]}")
        if not gens and not steps:
            continue
        root = next((s for s, _ in spans if not s.parent_span_id), spans[0][0])
        run_meta = dict(spans[0][1])
        if session_id:
            run_meta["sessionId"] = session_id
        try:
            run = Run(
                id=trace_id,
                pipeline_slug=(pipeline or root.name or None),
                user_id=user_id,
                metadata=run_meta,
                started_at=_when(first),
                ended_at=_when(max(first, last)),
                status="error" if failed else "ok",
                error=Error(type="error", message=root.status.message[:2000])
                if root.status.code == _ERROR
                else None,
                steps=steps,
            )
        except (ValidationError, ValueError) as exc:
            out.refuse(len(spans), f"trace {trace_id}: {str(exc).splitlines()[0][:200]}")
            continue
        out.runs.append(run)
        out.generations.extend(gens)
    return out


def _text(value: Any) -> str | None:
    if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
        return str(value)[:200]
    return None
