"""Admin pages (admins only; a member gets 403): users and roles, API keys, provider keys.

A new API key is shown once, on the page that answers its creation, and never again (only its
hash is stored). A provider key is stored encrypted and never shown at all after it is added.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from ...errors import InvalidInput, NotFound, SightlineError
from ...store.projects import create_key, create_user, list_keys, list_users, revoke_key, set_user_role
from .context import AdminDep, FormDep, View
from .render import page, redirect, url_with
from .session import load_session

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


def _keys_page(request: Request, view: View, **extra: Any) -> Response:
    with request.app.state.db.read() as conn:
        keys = list_keys(conn)
    context: dict[str, Any] = {"created": None, "form": {}, **extra}
    return page(request, "admin_keys.html", view=view, title="API keys", keys=keys, **context)


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


def _providers() -> ModuleType | None:
    """The gateway's provider-key store, when this build has it."""
    try:
        return importlib.import_module("sightline.store.providers")
    except ModuleNotFoundError as exc:
        if exc.name != "sightline.store.providers":
            raise
        return None


def _field(item: Any, *names: str) -> Any:
    for name in names:
        if isinstance(item, dict) and name in item:
            return item[name]
        if hasattr(item, name):
            return getattr(item, name)
    return None


def _provider_rows(items: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "id": _field(p, "id"),
            "name": _field(p, "name"),
            "base_url": _field(p, "base_url", "baseUrl"),
            "hint": _field(p, "key_hint", "hint", "prefix", "last4"),
            "default": bool(_field(p, "is_default", "default")),
            "created_us": _field(p, "created_us", "created"),
        }
        for p in items
    ]


@router.get("/providers", include_in_schema=False)
def providers_page(request: Request, view: AdminDep) -> Response:
    store = _providers()
    items: list[Any] = []
    if store is not None and view.project is not None:
        with request.app.state.db.read() as conn:
            items = list(store.list_providers(conn, view.project_id))
    return page(
        request,
        "admin_providers.html",
        view=view,
        title="Provider keys",
        available=store is not None,
        providers=_provider_rows(items),
    )


def _provider_write(request: Request, view: View, action: str, **values: Any) -> Response:
    session = load_session(request)
    store = _providers()
    if store is None:
        raise NotFound("provider keys come with the gateway, which this build does not have yet")
    try:
        with request.app.state.db.transaction() as conn:
            if action == "add":
                store.add_provider(
                    conn, view.project_id, secret_key=request.app.state.settings.secret_key, **values
                )
                session.say("ok", f"Added provider {values['name']}; its key is stored encrypted.")
            elif action == "remove":
                store.remove_provider(conn, view.project_id, values["provider_id"])
                session.say("ok", "Removed the provider key.")
            else:
                store.set_default_provider(conn, view.project_id, values["provider_id"])
                session.say("ok", "Default provider changed.")
    except SightlineError as exc:
        session.say("error", exc.message)
    return redirect(request, url_with("/admin/providers", view.scope))


@router.post("/providers", include_in_schema=False)
def add_provider(request: Request, view: AdminDep, form: FormDep) -> Response:
    name, base_url, api_key = _text(form, "name"), _text(form, "base_url"), _text(form, "api_key")
    if not name or not base_url or not api_key:
        load_session(request).say("error", "A provider needs a name, a base URL and a key.")
        return redirect(request, url_with("/admin/providers", view.scope))
    if not base_url.startswith(("http://", "https://")):
        raise InvalidInput("base URL must start with http:// or https://", field="base_url")
    return _provider_write(request, view, "add", name=name, base_url=base_url, api_key=api_key)


@router.post("/providers/{provider_id}/remove", include_in_schema=False)
def remove_provider(provider_id: int, request: Request, view: AdminDep, form: FormDep) -> Response:
    return _provider_write(request, view, "remove", provider_id=provider_id)


@router.post("/providers/{provider_id}/default", include_in_schema=False)
def default_provider(provider_id: int, request: Request, view: AdminDep, form: FormDep) -> Response:
    return _provider_write(request, view, "default", provider_id=provider_id)
