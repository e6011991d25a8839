"""Pipelines and functions.

The AI-Eye endpoints, as the source document gives them (answers ``{"success": true, "response": ...}``,
errors ``{"success": false, "error": {"type", "message"}}`` with a 4xx):

* ``GET /api/pipeline/args?pipeline_name=NAME`` → the pipeline's arguments
* ``POST /api/pipeline/call`` (or ``/call/``) ``{"pipeline_id"|"pipeline_name", "args", "openaikey_id"?}``
  → the result (and ``run_id``, the run it left)

Managing them (the one error shape ``{"error": {"type", "message", ...}}``):

* ``POST /api/pipelines`` ``{"name", "expression", "description"?}`` → ``201 {"id", "name", "args", ...}``
  (saving a name again replaces its expression); a refused expression → 400 with ``line`` and ``column``
* ``POST /api/pipelines/validate`` ``{"expression"}`` → ``{"args"}`` or that 400
* ``GET /api/pipelines``, ``GET /api/pipelines/{id}``
* ``GET /api/functions`` → the registered functions and the last sync's errors
* ``POST /api/functions/sync`` (an admin's dashboard session)
  → ``{"added", "deleted", "functions", "errors"}``

Auth: the project's API key (``Authorization: Bearer``), or a dashboard session with its CSRF token in
``X-CSRFToken``, as the source document's examples send it.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request
from sqlalchemy import Connection
from starlette.responses import Response
from starlette.routing import Route

from ...errors import InvalidInput, NotFound, PermissionDenied, SightlineError
from ...gateway import Caller
from ...pipelines import service
from ...pipelines.expression import ExpressionError
from ...store.access.audit import Actor
from ...store.pipelines import get_pipeline, list_functions, list_pipelines
from ...store.pipelines.registry import last_sync
from ..auth import actor, require_caller
from ..body import read_json
from ..dashboard.core.context import View, current_view
from ..dashboard.core.session import COOKIE, load_session
from ..dashboard.tools.prompt_editor import dashboard_caller
from ..responses import JSON

__all__ = ["openapi_paths", "router", "routes"]

T = TypeVar("T")


def _aieye_errors(request: Request, exc: SightlineError) -> Response:
    body: dict[str, Any] = {"type": exc.error_type, "message": exc.message}
    if exc.field:
        body["field"] = exc.field
    run_id = getattr(exc, "run_id", None)
    answer: dict[str, Any] = {"success": False, "error": body}
    if run_id:
        answer["run_id"] = run_id
    return JSON(answer, status_code=exc.status_code)


def _aieye(request: Request) -> None:
    request.state.error_renderer = _aieye_errors


router = APIRouter(tags=["pipelines"])
aieye = APIRouter(tags=["pipelines"], dependencies=[Depends(_aieye)])


async def _caller(request: Request, *, admin: bool = False) -> tuple[Caller, Actor, View | None]:
    """The gateway caller and the actor: an API key, or a dashboard session with its CSRF token."""
    if "authorization" in request.headers or COOKIE not in request.cookies:
        if admin:
            raise PermissionDenied(
                "syncing functions is for an admin's dashboard session (or `sightline functions sync`)"
            )
        caller = await require_caller(request)
        key = caller.key
        return caller, actor(request, key), None
    view = current_view(request)
    sent = request.headers.get("x-csrftoken", "")
    if not hmac.compare_digest(sent.encode(), load_session(request).csrf.encode()):
        raise PermissionDenied("send the session's CSRF token in the X-CSRFToken header (or use an API key)")
    if admin and not view.is_admin:
        raise PermissionDenied("syncing functions is for admins")
    return dashboard_caller(view), actor(request, view.user), view


def _expression_error(error: ExpressionError) -> JSON:
    return JSON({"error": error.to_json()}, status_code=400)


# --- the AI-Eye endpoints ---------------------------------------------------------------------------


@aieye.get("/api/pipeline/args", summary="A pipeline's arguments (AI-Eye)")
async def pipeline_args(request: Request, pipeline_name: str | None = None) -> JSON:
    caller, _, _ = await _caller(request)
    if not pipeline_name:
        raise InvalidInput("pipeline_name: required", field="pipeline_name")
    db = request.app.state.db
    args = await asyncio.to_thread(service.pipeline_args, db, caller.key.project_id, pipeline_name)
    return JSON({"success": True, "response": args})


async def _call(request: Request) -> JSON:
    caller, _, view = await _caller(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidInput("expected a JSON object: pipeline_id or pipeline_name, args", field="body")
    state = request.app.state
    result = await service.call_pipeline(
        db=state.db,
        settings=state.settings,
        gateway=state.gateway,
        sandbox=state.sandbox,
        caller=caller,
        body=body,
    )
    answer: dict[str, Any] = {"success": True, "response": result.response, "run_id": result.run_id}
    return JSON(answer)


async def pipeline_call(request: Request) -> JSON:
    """Body: ``{"pipeline_id": 14 | "pipeline_name": "...", "args": {...}, "openaikey_id"?: 1}`` →
    ``{"success": true, "response": result, "run_id"}``; a failing step is a 422 with the run it left.

    A plain Starlette route, as the gateway's and ingest's are (FastAPI's dependency resolution was a
    good part of what a one-step pipeline adds to its model call); ``/api/pipeline/call/`` too."""
    _aieye(request)
    return await _call(request)


routes = [
    Route("/api/pipeline/call", pipeline_call, methods=["POST"]),
    Route("/api/pipeline/call/", pipeline_call, methods=["POST"]),
]


def openapi_paths() -> dict[str, Any]:
    """The OpenAPI path item of :data:`routes` (plain routes: FastAPI does not describe them)."""
    body = {
        "type": "object",
        "properties": {
            "pipeline_id": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            "pipeline_name": {"type": "string"},
            "args": {"type": "object"},
            "openaikey_id": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        },
    }
    answer = {"description": '`{"success": true, "response", "run_id"}`'}
    refused = {"description": '`{"success": false, "error": {"type", "message"}}`'}
    return {
        "/api/pipeline/call": {
            "post": {
                "tags": ["pipelines"],
                "summary": "Run a pipeline with its arguments (AI-Eye)",
                "operationId": "pipeline_call",
                "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
                "responses": {"200": answer, "400": refused, "404": refused, "422": refused},
                "security": [{"HTTPBearer": []}],
            }
        }
    }


# --- managing pipelines -----------------------------------------------------------------------------


@router.post("/api/pipelines", status_code=201, summary="Save a pipeline (replaces that name's expression)")
async def save(request: Request) -> JSON:
    caller, actor, view = await _caller(request)
    if view is not None and not view.is_admin:
        raise PermissionDenied("saving pipelines from a dashboard session is for admins (or use an API key)")
    state = request.app.state
    body = await read_json(request)
    try:
        saved = await service.save_pipeline(state.db, state.settings, caller.key.project_id, body, actor)
    except ExpressionError as error:
        return _expression_error(error)
    return JSON(saved.wire(), status_code=201)


@router.post("/api/pipelines/validate", summary="Check an expression: its arguments, or where it is wrong")
async def validate(request: Request) -> JSON:
    caller, _, _ = await _caller(request)
    body = await read_json(request)
    expression = body.get("expression") if isinstance(body, dict) else None
    settings = request.app.state.settings
    try:
        args = await request.app.state.db.read_in_thread(
            lambda conn: service.validate(conn, caller.key.project_id, expression, settings)
        )
    except ExpressionError as error:
        return _expression_error(error)
    return JSON({"args": args})


@router.get("/api/pipelines", summary="The project's pipelines")
async def list_(request: Request) -> JSON:
    caller, _, _ = await _caller(request)
    found = await request.app.state.db.read_in_thread(
        lambda conn: list_pipelines(conn, caller.key.project_id)
    )
    return JSON({"data": [p.wire() for p in found]})


@router.get("/api/pipelines/{pipeline_id}", summary="One pipeline")
async def get(pipeline_id: int, request: Request) -> JSON:
    caller, _, _ = await _caller(request)
    found = await request.app.state.db.read_in_thread(
        lambda conn: get_pipeline(conn, caller.key.project_id, pipeline_id=pipeline_id)
    )
    if found is None:
        raise NotFound(f"no pipeline {pipeline_id} in this project", field="pipeline_id")
    return JSON(found.wire())


# --- functions --------------------------------------------------------------------------------------


@router.get("/api/functions", summary="The registered functions, and the last sync's errors")
async def functions(request: Request) -> JSON:
    await _caller(request)

    def both(conn: Connection) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        return list_functions(conn), last_sync(conn)

    registered, synced = await request.app.state.db.read_in_thread(both)
    return JSON({"data": registered, "lastSync": synced})


@router.post("/api/functions/sync", summary="Register the functions that exist now (admins)")
async def sync(request: Request) -> JSON:
    _, actor, _ = await _caller(request, admin=True)
    state = request.app.state
    synced = await service.sync_functions(state.db, state.settings, state.sandbox, actor)
    return JSON(synced.wire())


router.include_router(aieye)
