"""Liveness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.responses import Response

from ... import __version__
from ..responses import JSON

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Whether the server and its database answer")
def healthz(request: Request) -> JSON:
    db = request.app.state.db
    with db.read() as conn:
        conn.execute(text("SELECT 1"))
    return JSON(
        {"status": "ok", "version": __version__, "database": db.dialect, "writeQueue": db.writer.depth()}
    )


@router.get("/metrics", summary="Prometheus metrics")
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
