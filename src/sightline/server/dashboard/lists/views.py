"""Saved views and bulk actions on the generations list.

* ``/views``: the user's saved views (named filter sets of a list page) in the picked project, to open,
  rename or delete; ``POST /views`` saves the list's current filters under a name; ``/views/{id}``
  opens one (its address). A name is unique per user, project and page (409 naming ``name``).
* ``POST /generations/bulk``: an action on the rows ticked in the list (at most
  ``MAX_SELECTED``, 400 naming ``ids`` past it): download them (JSON Lines or CSV, as the export
  API writes them), add them to a dataset (admins, as the datasets page), or give each the same
  feedback or score, through the same writes as one generation's feedback and ``POST /api/scores``.
  Ids that are not the project's are left out, and said only to be "not found".

The partials ``_saved_views.html`` and ``_bulk_actions.html`` put these on a list page; a list page
passes :func:`list_tools` into its context so that they show the user's views and the datasets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from ....errors import Conflict, InvalidInput, PermissionDenied, SightlineError
from ....schema import Feedback, Score
from ....store.access.views import (
    MAX_NAME,
    MAX_SELECTED,
    PAGES,
    DeleteView,
    RenameView,
    SavedView,
    SaveView,
    get_view,
    list_views,
    selected_generations,
)
from ....store.evals import RecordScores, score_row
from ....store.evals.datasets import AddItems, items_from_generations, list_datasets
from ....store.generations.ingest import AddFeedback
from ....store.generations.reads.export import export
from ....store.generations.reads.queries import list_generations
from ....store.generations.records import Scope
from ...auth import actor
from ...errors import validation_message
from ..core.context import FormDep, View, ViewDep
from ..core.render import SECURITY_HEADERS, local_path, page, redirect, url_with
from ..core.session import load_session

__all__ = ["list_tools", "router"]

router = APIRouter()

ACTIONS = ("export", "dataset", "feedback", "score")


def _now() -> int:
    return time.time_ns() // 1000


def _text(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def view_url(view: View, saved: SavedView) -> str:
    """The address a saved view opens: its page and filters, in the project it was saved in (and the
    environment picked now, unless the view names one)."""
    params = [(k, v) for k, v in parse_qsl(saved.query) if k != "project"]
    if "project" in view.scope:
        params.append(("project", view.scope["project"]))
    return f"/{saved.page}?{urlencode(params)}" if params else f"/{saved.page}"


def list_tools(request: Request, view: View, page_name: str = "generations") -> dict[str, Any]:
    """What the saved-views and bulk-action partials show on a list page: the user's views of
    ``page_name`` (as ``(view, address)``) and the project's dataset names."""
    if view.project is None:
        return {"saved_views": [], "dataset_names": []}
    with request.app.state.db.read() as conn:
        saved = list_views(conn, view.user.id, view.project_id, page_name)
        datasets = [d.name for d in list_datasets(conn, view.project_id)]
    return {"saved_views": [(s, view_url(view, s)) for s in saved], "dataset_names": datasets}


# saved views


def _views_page(request: Request, view: View, status_code: int = 200, **context: Any) -> Response:
    saved: list[SavedView] = []
    if view.project is not None:
        with request.app.state.db.read() as conn:
            saved = list_views(conn, view.user.id, view.project_id)
    context.setdefault("form", {"name": "", "query": "", "page": "generations"})
    return page(
        request,
        "saved_views.html",
        status_code=status_code,
        view=view,
        title="Saved views",
        views=[(s, view_url(view, s), [f"{k}={v}" for k, v in parse_qsl(s.query)]) for s in saved],
        pages=PAGES,
        max_name=MAX_NAME,
        **context,
    )


@router.get("/views", include_in_schema=False)
def views_page(request: Request, view: ViewDep) -> Response:
    """The user's saved views in the picked project."""
    return _views_page(request, view)


@router.post("/views", include_in_schema=False)
async def save_view(request: Request, view: ViewDep, form: FormDep) -> Response:
    """Save the list's filters (``query``, the list's query string) as ``name``; then open the view."""
    fields = {k: _text(form, k) for k in ("name", "query", "page")}
    fields["page"] = fields["page"] or "generations"
    try:
        op = SaveView(view.user.id, view.project_id, fields["page"], fields["name"], fields["query"], _now())
        saved = await request.app.state.db.writer.write(op)
    except (InvalidInput, Conflict) as error:
        return _views_page(request, view, error.status_code, form=fields, error=error.message)
    load_session(request).say("ok", f"Saved the view “{saved.name}”.")
    return redirect(request, view_url(view, saved))


@router.get("/views/{view_id}", include_in_schema=False)
def open_view(view_id: int, request: Request, view: ViewDep) -> Response:
    """A saved view's list (a link that stays the same when the view's filters are all it needs)."""
    with request.app.state.db.read() as conn:
        saved = get_view(conn, view.user.id, view.project_id, view_id)
    return redirect(request, view_url(view, saved), status_code=302)


@router.post("/views/{view_id}/rename", include_in_schema=False)
async def rename_view(view_id: int, request: Request, view: ViewDep, form: FormDep) -> Response:
    try:
        op = RenameView(view.user.id, view.project_id, view_id, _text(form, "name"))
        saved = await request.app.state.db.writer.write(op)
    except (InvalidInput, Conflict) as error:
        return _views_page(request, view, error.status_code, error=error.message, editing=view_id)
    load_session(request).say("ok", f"Renamed the view to “{saved.name}”.")
    return redirect(request, url_with("/views", view.scope))


@router.post("/views/{view_id}/delete", include_in_schema=False)
async def delete_view(view_id: int, request: Request, view: ViewDep, form: FormDep) -> Response:
    saved = await request.app.state.db.writer.write(DeleteView(view.user.id, view.project_id, view_id))
    load_session(request).say("ok", f"Deleted the view “{saved.name}”.")
    return redirect(request, url_with("/views", view.scope))


# bulk actions


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@router.post("/generations/bulk", include_in_schema=False)
async def bulk(request: Request, view: ViewDep, form: FormDep) -> Response:
    """One action on the ticked rows; the list is shown again with what was done."""
    session = load_session(request)
    back = local_path(_text(form, "back"), url_with("/generations", view.scope))
    ids = list(dict.fromkeys(i.strip() for i in form.getlist("ids") if isinstance(i, str) and i.strip()))
    if len(ids) > MAX_SELECTED:
        raise InvalidInput(f"ids: select at most {MAX_SELECTED} rows at once", field="ids")
    action = _text(form, "action")
    if action not in ACTIONS:
        raise InvalidInput(f"action: expected one of {', '.join(ACTIONS)}", field="action")
    if not ids:
        session.say("error", "Select some rows first (tick the boxes at the start of the rows).")
        return redirect(request, back)

    def owned() -> dict[str, str]:
        with request.app.state.db.read() as conn:
            return selected_generations(conn, view.project_id, ids)

    found = await run_in_threadpool(owned)
    if not found:
        session.say("error", "None of the selected generations was found in this project.")
        return redirect(request, back)
    try:
        if action == "export":
            return _export(request, view, found, _text(form, "format") or "jsonl")
        if action == "dataset":
            message = await _to_dataset(request, view, found, _text(form, "dataset"))
        elif action == "feedback":
            message = await _feedback(request, view, found, form)
        else:
            message = await _score(request, view, found, form)
    except SightlineError as error:
        session.say("error", error.message)
        return redirect(request, back)
    missing = len(ids) - len(found)
    if missing:
        message += f" {_plural(missing, 'selected row')} {'was' if missing == 1 else 'were'} not found."
    session.say("ok", message)
    return redirect(request, back)


def _export(request: Request, view: View, found: dict[str, str], fmt: str) -> Response:
    if fmt not in ("jsonl", "csv"):
        raise InvalidInput("format: JSON Lines or CSV", field="format")
    wanted = {"id": {"$in": sorted(found)}}
    chunks = export(request.app.state.db, view.project_id, wanted, "csv" if fmt == "csv" else "jsonl")

    def stream() -> Iterator[bytes]:
        yield from chunks

    headers = {
        "Content-Disposition": f'attachment; filename="generations-{len(found)}.{fmt}"',
        "X-Content-Type-Options": SECURITY_HEADERS["X-Content-Type-Options"],
        "Cache-Control": "no-store",
    }
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson"
    return StreamingResponse(stream(), media_type=media, headers=headers)


async def _to_dataset(request: Request, view: View, found: dict[str, str], name: str) -> str:
    if not view.is_admin:
        raise PermissionDenied("Adding to a dataset is for admins (as making one is).")
    name = " ".join(name.split())
    if not name or len(name) > 200:
        raise InvalidInput(
            "dataset: pick a dataset, or give a new one a name of 1 to 200 characters", field="dataset"
        )

    def records() -> list[dict[str, Any]]:
        with request.app.state.db.read() as conn:
            return list_generations(conn, view.project_id, {"id": {"$in": sorted(found)}}, MAX_SELECTED).data

    items = items_from_generations(await run_in_threadpool(records), "output")
    op = AddItems(view.project_id, name, None, items, actor(request, view.user), _now())
    dataset = await request.app.state.db.writer.write(op)
    now = f"now v{dataset.version}, {_plural(dataset.items, 'item')}"
    return f"{len(items)} added to dataset {dataset.name} ({now})."


def _feedback_given(form: Any, username: str) -> Feedback:
    body: dict[str, Any] = {"userId": username}
    thumbs, rating = _text(form, "thumbs"), _text(form, "rating")
    if thumbs:
        if thumbs not in ("up", "down"):
            raise InvalidInput("thumbs: up or down", field="thumbs")
        body["thumbs"] = thumbs
    if rating:
        if rating not in ("1", "2", "3", "4", "5"):
            raise InvalidInput("rating: pick 1 to 5 stars", field="rating")
        body["rating"] = int(rating)
    if len(body) == 1:
        raise InvalidInput("Give thumbs or a rating to send as feedback.", field="thumbs")
    try:
        return Feedback.model_validate(body)
    except ValidationError as exc:
        message, field = validation_message(exc)
        raise InvalidInput(message, field=field) from None


async def _feedback(request: Request, view: View, found: dict[str, str], form: Any) -> str:
    feedback = _feedback_given(form, view.user.username)
    writer = request.app.state.db.writer
    # One write per generation, as one generation's feedback is: the writer commits them together,
    # and applies them one by one if one fails, so one bad row never costs the others theirs.
    futures = [
        writer.write(AddFeedback(Scope(view.project_id, environment), generation_id, feedback))
        for generation_id, environment in found.items()
    ]
    results = await asyncio.gather(*futures, return_exceptions=True)
    saved = sum(1 for r in results if not isinstance(r, BaseException))
    failed = len(results) - saved
    return f"Feedback given on {_plural(saved, 'generation')}." + (f" {failed} failed." if failed else "")


def _score_given(form: Any, generation_id: str) -> Score:
    name, raw = _text(form, "score_name"), _text(form, "score_value")
    if not name:
        raise InvalidInput("score name: give the score a name (say, helpfulness)", field="score_name")
    if not raw:
        raise InvalidInput("score value: give a number, or a label such as pass", field="score_value")
    body: dict[str, Any] = {"generationId": generation_id, "name": name, "source": "human"}
    try:
        body["value"] = float(raw)
    except ValueError:
        body["label"] = raw  # a label (pass, fail, …): what "scores.correct=pass" filters on
    try:
        return Score.model_validate(body)
    except ValidationError as exc:
        message, field = validation_message(exc)
        raise InvalidInput(message, field=field) from None


async def _score(request: Request, view: View, found: dict[str, str], form: Any) -> str:
    scores = [(_score_given(form, gid), Scope(view.project_id, env)) for gid, env in found.items()]
    who = {"userId": view.user.username}
    rows = [score_row(score, scope, body=who) for score, scope in scores]
    await request.app.state.db.writer.write(RecordScores(rows))
    return f"Scored {_plural(len(rows), 'generation')}: {scores[0][0].name} = {_text(form, 'score_value')}."
