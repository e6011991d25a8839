"""Logging in and out (users are made with ``sightline create-admin`` or on the admin page)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...store.access.projects import User, authenticate_user
from .context import FormDep, ViewDep
from .render import local_path, page, redirect
from .session import load_session

router = APIRouter()


@router.get("/", include_in_schema=False)
def home(request: Request) -> Response:
    return redirect(request, "/generations", status_code=302)


@router.get("/login", include_in_schema=False)
def login_form(request: Request, next: str | None = None) -> Response:  # noqa: A002
    session = load_session(request)
    if session.user_id is not None:
        return redirect(request, local_path(next), status_code=302)
    return page(request, "login.html", view=None, title="Log in", next=local_path(next), error=None)


@router.post("/login", include_in_schema=False)
async def login(request: Request, form: FormDep) -> Response:
    username, password = str(form.get("username") or ""), str(form.get("password") or "")
    target = local_path(str(form.get("next") or ""))

    def check() -> User | None:
        with request.app.state.db.read() as conn:
            return authenticate_user(conn, username.strip(), password)

    user = await run_in_threadpool(check) if username and password else None
    if user is None:
        return page(
            request,
            "login.html",
            status_code=401,
            view=None,
            title="Log in",
            next=target,
            error="Wrong username or password.",
            username=username,
        )
    load_session(request).log_in(user.id)
    return redirect(request, target)


@router.post("/logout", include_in_schema=False)
def logout(request: Request, view: ViewDep, _: FormDep) -> Response:
    load_session(request).log_out()
    return redirect(request, "/login")
