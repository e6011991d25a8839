"""Functions and pipelines in the dashboard.

* ``/functions``: the registered functions with their signatures and docstrings, what the last sync
  could not register (a file that failed to import, with its error), and for admins a Sync button. A
  sync shows "N added, M deleted" and, when anything changed, a "Refresh page" link.
* ``/pipelines``: the project's pipelines, and (admins) a form to save one, validated as it is typed
  (``POST /api/pipelines/validate`` with the session's CSRF token) and again when saved.
* ``/pipelines/{id}``: a pipeline's expression and its execution form, one field per argument; the
  result is shown with a link to the run it left. It runs through the same service as
  ``POST /api/pipeline/call``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from ....errors import InvalidInput, NotFound, SightlineError
from ....pipelines import service
from ....pipelines.expression import ExpressionError
from ....store.pipelines import get_pipeline, list_functions, list_pipelines
from ....store.pipelines.registry import last_sync
from ...auth import actor
from ..core.context import AdminDep, FormDep, View, ViewDep
from ..core.render import page, redirect, url_with
from .prompt_editor import dashboard_caller

__all__ = ["router"]

router = APIRouter()


def _functions_page(request: Request, view: View, synced: dict[str, Any] | None = None) -> Response:
    with request.app.state.db.read() as conn:
        registered = list_functions(conn)
        last = last_sync(conn)
    for info in registered:
        params = info["signature"].get("params", [])
        shown = [
            p["name"]
            + (f": {p['type']}" if p.get("type") else "")
            + ("" if p.get("required", True) else "=…")
            for p in params
        ]
        returns = info["signature"].get("returns")
        info["shown"] = f"{info['name']}({', '.join(shown)})" + (f" → {returns}" if returns else "")
    return page(
        request,
        "functions.html",
        view=view,
        title="Functions",
        functions=registered,
        last=last,
        synced=synced,
        folder=request.app.state.settings.functions_dir,
    )


@router.get("/functions", include_in_schema=False)
def functions_page(request: Request, view: ViewDep) -> Response:
    return _functions_page(request, view)


@router.post("/functions/_sync", include_in_schema=False)
async def sync(request: Request, view: AdminDep, form: FormDep) -> Response:
    state = request.app.state
    done = await service.sync_functions(state.db, state.settings, state.sandbox, actor(request, view.user))
    return _functions_page(request, view, synced=done.wire())


def _pipelines_page(request: Request, view: View, status_code: int = 200, **context: Any) -> Response:
    pipelines = []
    if view.project is not None:
        with request.app.state.db.read() as conn:
            pipelines = list_pipelines(conn, view.project_id)
    context.setdefault("form", {"name": "", "expression": "", "description": ""})
    return page(
        request,
        "pipelines.html",
        status_code=status_code,
        view=view,
        title="Pipelines",
        pipelines=pipelines,
        **context,
    )


@router.get("/pipelines", include_in_schema=False)
def pipelines_page(request: Request, view: ViewDep) -> Response:
    return _pipelines_page(request, view)


@router.post("/pipelines/_new", include_in_schema=False)
async def save(request: Request, view: AdminDep, form: FormDep) -> Response:
    fields = {k: str(form.get(k) or "") for k in ("name", "expression", "description")}
    body = {**fields, "description": fields["description"] or None}
    state = request.app.state
    if view.project is None:
        raise NotFound("pick a project first")
    try:
        saved = await service.save_pipeline(
            state.db, state.settings, view.project_id, body, actor(request, view.user)
        )
    except ExpressionError as error:
        return _pipelines_page(request, view, 400, form=fields, error=str(error), place=error.to_json())
    except InvalidInput as error:
        return _pipelines_page(request, view, 400, form=fields, error=error.message)
    return redirect(request, url_with(f"/pipelines/{saved.id}", view.scope))


def _pipeline(request: Request, view: View, pipeline_id: int) -> Any:
    with request.app.state.db.read() as conn:
        found = get_pipeline(conn, view.project_id, pipeline_id=pipeline_id)
    if found is None:
        raise NotFound(f"no pipeline {pipeline_id} in this project")
    return found


@router.get("/pipelines/{pipeline_id:int}", include_in_schema=False)
def pipeline_page(pipeline_id: int, request: Request, view: ViewDep) -> Response:
    found = _pipeline(request, view, pipeline_id)
    return page(request, "pipeline.html", view=view, title=found.name, pipeline=found, args={}, result=None)


@router.post("/pipelines/{pipeline_id:int}/_run", include_in_schema=False)
async def run(pipeline_id: int, request: Request, view: ViewDep, form: FormDep) -> Response:
    found = _pipeline(request, view, pipeline_id)
    args = {name: str(form.get(f"arg_{name}") or "") for name in found.args}
    provider = str(form.get("provider") or "").strip()
    body: dict[str, Any] = {"pipeline_id": found.id, "args": args}
    if provider:
        body["openaikey_id"] = provider
    state = request.app.state
    result: dict[str, Any]
    status = 200
    try:
        done = await service.call_pipeline(
            db=state.db,
            settings=state.settings,
            gateway=state.gateway,
            sandbox=state.sandbox,
            caller=dashboard_caller(view),
            body=body,
        )
        result = {"response": done.response, "run_id": done.run_id}
    except SightlineError as error:
        status = error.status_code
        result = {"error": error.message, "run_id": getattr(error, "run_id", None)}
    return page(
        request,
        "pipeline.html",
        status_code=status,
        view=view,
        title=found.name,
        pipeline=found,
        args=args,
        provider=provider,
        result=result,
    )
