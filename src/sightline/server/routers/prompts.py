"""Managed prompts: save versions, read them, move labels.

* ``POST /api/prompts`` ``{"name", "template"|"messages", "model"?, "parameters"?, "description"?}``
  → ``201 {"name", "version", "templateVersion", "args"}`` (the next version when the name exists)
* ``GET /api/prompts`` → ``{"data": [summary, ...]}``
* ``GET /api/prompts/{name}`` (``?version=`` a number or a content hash, or ``?label=``; default the
  latest) → the version, with its template or messages, arguments, model, parameters and labels
* ``GET /api/prompts/{name}/versions`` → ``{"data": [version, ...]}`` newest first
* ``POST /api/prompts/{name}/labels`` ``{"label", "version"}`` → ``{"name", "label", "version",
  "previous"}`` (audited)

Auth: the project's API key (``Authorization: Bearer``), or a dashboard session sending its CSRF token
in ``X-CSRFToken`` (reads: any user; writes: an admin), scoped to the project the session looks at.
"""

from __future__ import annotations

import functools
import hmac
from typing import Any, TypeVar

from fastapi import APIRouter, Request

from ...errors import InvalidInput, NotFound, PermissionDenied
from ...store.access.audit import Actor
from ...store.prompts import (
    MoveLabel,
    Saved,
    SavePrompt,
    check_label,
    get_prompt,
    list_prompts,
    parse_draft,
    prompt_history,
)
from ..auth import actor, require_key
from ..body import read_json
from ..dashboard.core.context import current_view
from ..dashboard.core.session import COOKIE, load_session
from ..responses import JSON

__all__ = ["router"]

router = APIRouter(tags=["prompts"])
T = TypeVar("T")


async def _caller(request: Request, *, write: bool) -> tuple[int, Actor]:
    """The project and the actor of the request: an API key, or a dashboard session (with its CSRF
    token; an admin's to write)."""
    if "authorization" in request.headers or COOKIE not in request.cookies:
        key = await require_key(request)
        return key.project_id, actor(request, key)
    view = current_view(request)
    sent = request.headers.get("x-csrftoken", "")
    if not hmac.compare_digest(sent.encode(), load_session(request).csrf.encode()):
        raise PermissionDenied("send the session's CSRF token in the X-CSRFToken header (or use an API key)")
    if write and not view.is_admin:
        raise PermissionDenied("changing prompts from a dashboard session is for admins (or use an API key)")
    return view.project_id, actor(request, view.user)


@router.post("/api/prompts", status_code=201, summary="Save a prompt (a new version when the name exists)")
async def save(request: Request) -> JSON:
    project_id, by = await _caller(request, write=True)
    draft = parse_draft(await read_json(request))
    saved: Saved = await request.app.state.db.writer.write(SavePrompt(project_id, draft, by))
    return JSON(saved.wire(), status_code=201)


@router.get("/api/prompts", summary="Every prompt of the project: managed and recorded")
async def list_(request: Request) -> JSON:
    project_id, _ = await _caller(request, write=False)
    found = await request.app.state.db.read_in_thread(functools.partial(list_prompts, project_id=project_id))
    return JSON({"data": [p.wire() for p in found]})


def _version(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > 64 or not value.isascii() or not value.isalnum():
        raise InvalidInput("version: a version number or a template version (hex)", field="version")
    return value


@router.get("/api/prompts/{name}", summary="One version of a prompt (?version= or ?label=; default latest)")
async def get(name: str, request: Request, version: str | None = None, label: str | None = None) -> JSON:
    project_id, _ = await _caller(request, write=False)
    wanted = _version(version)
    if wanted is not None and label:
        raise InvalidInput("label: give ?version= or ?label=, not both", field="label")
    found = await request.app.state.db.read_in_thread(
        functools.partial(get_prompt, project_id=project_id, name=name, version=wanted, label=label or None)
    )
    if found is None:
        what = f"label {label!r}" if label else f"version {wanted!r}" if wanted else "versions"
        raise NotFound(f"prompt {name[:200]!r} has no {what} in this project")
    return JSON(found.wire())


@router.get("/api/prompts/{name}/versions", summary="Every version of a prompt, newest first")
async def versions(name: str, request: Request) -> JSON:
    project_id, _ = await _caller(request, write=False)
    history = await request.app.state.db.read_in_thread(
        functools.partial(prompt_history, project_id=project_id, name=name)
    )
    if not history:
        raise NotFound(f"no prompt named {name[:200]!r} in this project")
    return JSON({"data": [p.wire() for p in history]})


def _number(value: Any) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 10:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**31:
        raise InvalidInput("version: expected a version number (1, 2, ...)", field="version")
    return value


@router.post("/api/prompts/{name}/labels", summary="Point a label (production, staging, ...) at a version")
async def move_label(name: str, request: Request) -> JSON:
    project_id, by = await _caller(request, write=True)
    body = await read_json(request)
    unknown = sorted(str(k) for k in body if k not in ("label", "version"))
    if unknown:
        raise InvalidInput(f"{unknown[0]}: not a field (label, version)", field=unknown[0])
    label, number = check_label(body.get("label")), _number(body.get("version"))
    previous = await request.app.state.db.writer.write(MoveLabel(project_id, name, label, number, by))
    return JSON({"name": name, "label": label, "version": number, "previous": previous})
