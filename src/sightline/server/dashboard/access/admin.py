"""Admin pages (admins only; a member gets 403): users and roles, API keys, provider keys.

Disabling or removing a user, and "sign out everywhere", end the user's sessions at once.

A new API key is shown once, on the page that answers its creation, and never again (only its
hash is stored). A provider key is stored encrypted and never shown at all after it is added.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from ....errors import SightlineError
from ....store.access.limits import Periods, get_limits, key_spend
from ....store.access.projects import (
    create_key,
    create_user,
    list_keys,
    list_users,
    revoke_key,
    set_user_role,
)
from ....store.access.users import remove_user, set_user_disabled, sign_out_everywhere
from ....store.gateway import providers as provider_store
from ..core.context import AdminDep, FormDep, View
from ..core.render import page, redirect, url_with
from ..core.session import load_session

router = APIRouter(prefix="/admin")


def _text(form: Any, name: str) -> str:
    return str(form.get(name) or "").strip()


@router.get("", include_in_schema=False)
def admin_home(request: Request, view: AdminDep) -> Response:
    return redirect(request, url_with("/admin/users", view.scope), status_code=302)


@router.get("/users", include_in_schema=False)
def users_page(request: Request, view: AdminDep) -> Response:
    with request.app.state.db.read() as conn:
        users = list_users(conn)
    return page(request, "admin_users.html", view=view, title="Users", users=users)


@router.post("/users", include_in_schema=False)
def add_user(request: Request, view: AdminDep, form: FormDep) -> Response:
    session = load_session(request)
    try:
        with request.app.state.db.transaction() as conn:
            user = create_user(
                conn,
                _text(form, "username"),
                str(form.get("password") or ""),
                _text(form, "role") or "member",
            )
        session.say("ok", f"Added {user.role} {user.username}.")
    except SightlineError as exc:
        session.say("error", exc.message)
    return redirect(request, url_with("/admin/users", view.scope))


@router.post("/users/role", include_in_schema=False)
def change_role(request: Request, view: AdminDep, form: FormDep) -> Response:
    session = load_session(request)
    username, role = _text(form, "username"), _text(form, "role")
    if username == view.user.username:
        session.say("error", "You cannot change your own role (ask another admin).")
        return redirect(request, url_with("/admin/users", view.scope))
    try:
        with request.app.state.db.transaction() as conn:
            user = set_user_role(conn, username, role)
        session.say("ok", f"{user.username} is now {user.role}.")
    except SightlineError as exc:
        session.say("error", exc.message)
    return redirect(request, url_with("/admin/users", view.scope))


@router.post("/users/{action}", include_in_schema=False)
def user_action(action: str, request: Request, view: AdminDep, form: FormDep) -> Response:
    """``signout`` (end every session of the user), ``disable``, ``enable`` or ``remove`` a user."""
    session = load_session(request)
    username = _text(form, "username")
    if action not in ("signout", "disable", "enable", "remove"):
        session.say("error", f"Unknown action {action!r}.")
        return redirect(request, url_with("/admin/users", view.scope))
    if username == view.user.username and action in ("disable", "remove"):
        session.say("error", f"You cannot {action} yourself (ask another admin).")
        return redirect(request, url_with("/admin/users", view.scope))
    try:
        with request.app.state.db.transaction() as conn:
            if action == "signout":
                ended = sign_out_everywhere(conn, username)
                message = f"Signed {username} out everywhere ({ended} session{'s' * (ended != 1)} ended)."
            elif action == "remove":
                remove_user(conn, username)
                message = f"Removed {username}; their sessions have ended."
            else:
                set_user_disabled(conn, username, action == "disable")
                message = f"{username} is {action}d" + (
                    "; their sessions have ended." if action == "disable" else "."
                )
        session.say("ok", message)
    except SightlineError as exc:
        session.say("error", exc.message)
    if action == "signout" and username == view.user.username:
        session.log_out()
        return redirect(request, "/login")
    return redirect(request, url_with("/admin/users", view.scope))


def _keys_page(request: Request, view: View, **extra: Any) -> Response:
    at = Periods.at(time.time_ns() // 1000)
    with request.app.state.db.read() as conn:
        keys = list_keys(conn)
        today, month = key_spend(conn, None, at.day), key_spend(conn, None, at.month)
        projects = {k.project_id for k in keys}
        budgets = {x.key_id: x for p in projects for x in get_limits(conn, p) if x.key_id}
    context: dict[str, Any] = {"created": None, "form": {}, **extra}
    return page(
        request,
        "admin_keys.html",
        view=view,
        title="API keys",
        keys=keys,
        today=today,
        month=month,
        budgets=budgets,
        **context,
    )


@router.get("/keys", include_in_schema=False)
def keys_page(request: Request, view: AdminDep) -> Response:
    return _keys_page(request, view)


@router.post("/keys", include_in_schema=False)
def add_key(request: Request, view: AdminDep, form: FormDep) -> Response:
    """Make a key and show it on this answer only."""
    project, environment = _text(form, "project"), _text(form, "environment") or "dev"
    try:
        with request.app.state.db.transaction() as conn:
            secret, key = create_key(conn, project, environment, _text(form, "name") or None)
    except SightlineError as exc:
        return _keys_page(request, view, form=dict(form), error=exc.message, status_code=400)
    return _keys_page(request, view, created=(secret, key), status_code=201)


@router.post("/keys/{key_id}/revoke", include_in_schema=False)
def revoke(key_id: int, request: Request, view: AdminDep, form: FormDep) -> Response:
    session = load_session(request)
    with request.app.state.db.transaction() as conn:
        key = revoke_key(conn, str(key_id))
    request.app.state.keys.forget(key.key_hash)  # this process stops trusting it at once
    session.say("ok", f"Revoked key {key.prefix}… of {key.project}/{key.environment}.")
    return redirect(request, url_with("/admin/keys", view.scope))


@router.get("/providers", include_in_schema=False)
def providers_page(request: Request, view: AdminDep) -> Response:
    providers: list[dict[str, Any]] = []
    if view.project is not None:
        with request.app.state.db.read() as conn:
            providers = provider_store.list_providers(conn, view.project_id)
    return page(request, "admin_providers.html", view=view, title="Provider keys", providers=providers)


def _provider_write(request: Request, view: View, action: str, **values: Any) -> Response:
    session = load_session(request)
    try:
        with request.app.state.db.transaction() as conn:
            if action == "add":
                secret_key = request.app.state.settings.secret_key
                provider_store.add_provider(conn, view.project_id, secret_key=secret_key, **values)
                session.say("ok", f"Added provider {values['name']}; its key is stored encrypted.")
            elif action == "remove":
                provider_store.remove_provider(conn, view.project_id, values["provider_id"])
                session.say("ok", "Removed the provider.")
            else:
                provider_store.set_default_provider(conn, view.project_id, values["provider_id"])
                session.say("ok", "Default provider changed.")
        # This process's gateway reads the project's providers again on its next call (others within 5 s).
        request.app.state.gateway.providers.forget(view.project_id)
    except SightlineError as exc:
        session.say("error", exc.message)
    return redirect(request, url_with("/admin/providers", view.scope))


@router.post("/providers", include_in_schema=False)
def add_provider(request: Request, view: AdminDep, form: FormDep) -> Response:
    name, base_url, api_key = _text(form, "name"), _text(form, "base_url"), _text(form, "api_key")
    if not name or not base_url:
        load_session(request).say("error", "A provider needs a name and a base URL.")
        return redirect(request, url_with("/admin/providers", view.scope))
    return _provider_write(request, view, "add", name=name, base_url=base_url, api_key=api_key or None)


@router.post("/providers/{provider_id}/remove", include_in_schema=False)
def remove_provider(provider_id: int, request: Request, view: AdminDep, form: FormDep) -> Response:
    return _provider_write(request, view, "remove", provider_id=provider_id)


@router.post("/providers/{provider_id}/default", include_in_schema=False)
def default_provider(provider_id: int, request: Request, view: AdminDep, form: FormDep) -> Response:
    return _provider_write(request, view, "default", provider_id=provider_id)
