"""``POST /api/otel/v1/traces``: OpenTelemetry traces over OTLP/HTTP (protobuf or JSON, gzip or not).

Point an OTLP exporter here (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://HOST:PORT/api/otel/v1/traces``)
with a Sightline API key as ``Authorization: Bearer KEY`` or ``x-api-key: KEY``
(``OTEL_EXPORTER_OTLP_HEADERS=x-api-key=KEY``). :mod:`sightline.compat.otlp` turns each trace into a run
and its model-call spans into generations; they are written in one operation through the writer.

Answers as the OTLP specification says: 200 with an ``ExportTraceServiceResponse`` in the request's
encoding (``partialSuccess.rejectedSpans`` counts the spans refused alone), 400 with a ``google.rpc.Status``
for a request that cannot be read, 401 for a missing or wrong key, 413 for a body (compressed or not) or a
span count over the limits.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from sqlalchemy import Connection, select
from starlette.responses import Response

from ...compat.otlp import Traces, parse, translate
from ...errors import InvalidInput, SightlineError
from ...gateway import KeyLookup
from ...schema import Run, RunStep
from ...store import tables as t
from ...store.generations.ingest import InsertGenerations, PreparedGeneration, UpsertRuns, prepare_generation
from ...store.generations.records import Scope
from ..body import read_raw

__all__ = ["router"]


def _encoding(request: Request) -> str:
    return "json" if "json" in request.headers.get("content-type", "") else "protobuf"


def _status(code: int, message: str, encoding: str) -> bytes:
    """A ``google.rpc.Status`` (code, message) in the request's encoding (protobuf written by hand:
    two fields, and the server then needs no googleapis package)."""
    if encoding == "json":
        return orjson.dumps({"code": code, "message": message})
    text = message.encode()[:4000]
    out = bytearray(b"\x08" + bytes([code]) + b"\x12")
    length = len(text)
    while length >= 0x80:
        out.append((length & 0x7F) | 0x80)
        length >>= 7
    out.append(length)
    return bytes(out) + text


def _otlp_errors(request: Request, exc: SightlineError) -> Response:
    encoding = _encoding(request)
    grpc_code = {400: 3, 401: 16, 403: 7, 404: 5, 413: 8, 503: 14}.get(exc.status_code, 13)
    media = "application/json" if encoding == "json" else "application/x-protobuf"
    return Response(_status(grpc_code, exc.message, encoding), status_code=exc.status_code, media_type=media)


async def _errors_in_otlp_shape(request: Request) -> None:
    request.state.error_renderer = _otlp_errors


router = APIRouter(tags=["compatibility"], dependencies=[Depends(_errors_in_otlp_shape)])


@dataclass(slots=True)
class RecordTraces:
    """The runs and generations of one export, in one transaction. A trace whose spans come in several
    exports keeps the steps of each (by span id), its earliest start and latest end."""

    scope: Scope
    runs: list[Run]
    insert: InsertGenerations | None
    size: int = 1

    def apply(self, conn: Connection) -> int:
        r = t.runs
        ids = [run.id for run in self.runs]
        before = {
            row.id: (row.body or {}).get("steps") or []
            for row in conn.execute(
                select(r.c.id, r.c.body).where(r.c.project_id == self.scope.project_id, r.c.id.in_(ids))
            )
        }
        runs = []
        for run in self.runs:
            earlier = before.get(run.id)
            if earlier:
                mine = {s.model_extra.get("spanId") for s in run.steps or [] if s.model_extra}
                kept = [s for s in earlier if s.get("spanId") not in mine]
                merged = kept + [s.wire() for s in run.steps or []]
                merged.sort(key=lambda s: (s.get("startedAt") or "", s.get("spanId") or ""))
                run = run.model_copy(update={"steps": [RunStep.model_validate(s) for s in merged]})
            runs.append(run)
        UpsertRuns(self.scope, runs).apply(conn)
        return len(self.insert.apply(conn)) if self.insert is not None else 0


@router.post("/api/otel/v1/traces", summary="OpenTelemetry traces (OTLP/HTTP, protobuf or JSON)")
async def traces(request: Request) -> Response:
    header = request.headers.get("authorization") or (
        f"Bearer {request.headers['x-api-key']}" if "x-api-key" in request.headers else None
    )
    keys: KeyLookup = request.app.state.keys
    key = (await keys.authenticate(header)).key
    settings = request.app.state.settings
    encoding = _encoding(request)
    body = await read_raw(request)  # gzip undone there, within max_body_bytes once decompressed too
    content_type = request.headers.get("content-type", "")

    def read() -> tuple[Traces, list[PreparedGeneration]]:
        # Off the event loop: an export of thousands of spans takes a while to read, and the other
        # requests are answered meanwhile.
        found = translate(parse(body, content_type), max_spans=settings.otlp_max_spans)
        prepared = []
        for gen in found.generations:
            try:
                prepared.append(prepare_generation(gen, key.scope))
            except InvalidInput as exc:
                found.refuse(1, exc.message)
        return found, prepared

    found, prepared = await asyncio.to_thread(read)
    if found.runs or prepared:
        insert = InsertGenerations(key.scope, prepared) if prepared else None
        await request.app.state.db.writer.write(
            RecordTraces(key.scope, found.runs, insert, size=1 + len(prepared))
        )
    metrics = request.app.state.metrics
    metrics.ingest_items.labels("span", "accepted").inc(found.spans - found.rejected)
    if found.rejected:
        metrics.ingest_items.labels("span", "refused").inc(found.rejected)
    answer = ExportTraceServiceResponse()
    if found.rejected:
        answer.partial_success.rejected_spans = found.rejected
        answer.partial_success.error_message = "; ".join(found.errors)[:2000]
    if encoding == "json":
        payload: dict[str, Any] = {}
        if found.rejected:
            payload["partialSuccess"] = {
                "rejectedSpans": str(found.rejected),
                "errorMessage": answer.partial_success.error_message,
            }
        return Response(orjson.dumps(payload), media_type="application/json")
    return Response(answer.SerializeToString(), media_type="application/x-protobuf")
