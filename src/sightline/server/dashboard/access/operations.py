"""Operations pages for admins: the audit log, and the project's retention policies, rate limits and
budgets with what has been spent.

* ``/admin/audit``: who did what, when and from where, for the picked project (or the install-wide
  actions: users, function syncs), newest first, with paging; never a secret (the log holds none).
* ``/admin/operations``: each retention policy with when it last ran and what it removed, a form to
  set one; the project's limits and its spend this minute, today and this month, a form to set them.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from ....errors import InvalidInput, SightlineError
from ....store.access.audit import audit_entries
from ....store.access.limits import LIMIT_FIELDS, SetLimits, check_limits, get_limits, project_spend
from ....store.retention import SetPolicy, check_policy, get_policies
from ...auth import actor
from ..core.context import AdminDep, FormDep, View
from ..core.render import page, redirect, url_with

__all__ = ["router"]

router = APIRouter(prefix="/admin")


@router.get("/audit", include_in_schema=False)
def audit_page(
    request: Request, view: AdminDep, install: bool = False, before: int | None = None
) -> Response:
    project_id = None if install or view.project is None else view.project_id
    with request.app.state.db.read() as conn:
        entries = audit_entries(conn, project_id, before_id=before, limit=100)
    older = entries[-1].id if len(entries) == 100 else None
    return page(
        request,
        "admin_audit.html",
        view=view,
        title="Audit log",
        entries=entries,
        install=install,
        older=older,
    )


def _operations_page(
    request: Request, view: View, status_code: int = 200, error: str | None = None
) -> Response:
    with request.app.state.db.read() as conn:
        policies = get_policies(conn, view.project_id)
        limits = get_limits(conn, view.project_id)
        used = project_spend(conn, view.project_id, time.time_ns() // 1000)
    return page(
        request,
        "admin_operations.html",
        status_code=status_code,
        view=view,
        title="Retention and limits",
        policies=policies,
        limits=limits,
        used=used,
        error=error,
    )


@router.get("/operations", include_in_schema=False)
def operations_page(request: Request, view: AdminDep) -> Response:
    return _operations_page(request, view)


def _number(form: Any, name: str, *, whole: bool = True) -> Any:
    """The form's field as a number (``None`` when empty); ``whole``: a whole one as an int (a count),
    as the JSON API would have it."""
    text = str(form.get(name) or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput(f"{name}: a number", field=name) from None
    return int(value) if whole and value.is_integer() else value


@router.post("/operations/retention", include_in_schema=False)
async def set_retention(request: Request, view: AdminDep, form: FormDep) -> Response:
    try:
        action, days = check_policy(str(form.get("action") or ""), _number(form, "afterDays"))
        environment = str(form.get("environment") or "").strip()
        op = SetPolicy(
            view.project_id, environment, action, days, actor(request, view.user), time.time_ns() // 1000
        )
        await request.app.state.db.writer.write(op)
    except SightlineError as exc:
        return _operations_page(request, view, exc.status_code, exc.message)
    return redirect(request, url_with("/admin/operations", view.scope))


@router.post("/operations/limits", include_in_schema=False)
async def set_limits(request: Request, view: AdminDep, form: FormDep) -> Response:
    try:
        values = check_limits(
            {name: _number(form, name, whole=field.whole) for name, field in LIMIT_FIELDS.items()}, 0
        )
        op = SetLimits(view.project_id, 0, values, actor(request, view.user), time.time_ns() // 1000)
        await request.app.state.db.writer.write(op)
    except SightlineError as exc:
        return _operations_page(request, view, exc.status_code, exc.message)
    request.app.state.gateway.limiter.forget(view.project_id)
    return redirect(request, url_with("/admin/operations", view.scope))
