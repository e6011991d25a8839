"""Logging in and out, and one's own account (users are made with ``sightline create-admin`` or on
the admin page).

Logins are throttled per account and per client address (``store.access.throttle``): past a few
failures the form answers 429 with ``Retry-After`` without checking the password. The counts are
kept in Redis when ``redis_url`` is set (``throttle_redis``), else in the database; if Redis fails,
the database counts, so a Redis outage never lifts the throttle.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TypeVar

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ....errors import SightlineError
from ....store.access.projects import authenticate_user
from ....store.access.sessions import end_session, end_user_sessions, start_session
from ....store.access.throttle import LoginThrottle, address_subject, user_subject
from ....store.access.throttle_redis import RedisLoginThrottle
from ....store.access.users import change_password
from ..core.context import FormDep, ViewDep
from ..core.render import local_path, page, redirect
from ..core.session import load_session

router = APIRouter()
log = logging.getLogger(__name__)

THROTTLE = LoginThrottle()


def _redis_throttle(request: Request) -> RedisLoginThrottle | None:
    """This app's Redis throttle (made on first use), or ``None`` when no Redis is configured."""
    settings = request.app.state.settings
    if not settings.redis_url:
        return None
    found = getattr(request.app.state, "login_throttle", None)
    if not isinstance(found, RedisLoginThrottle):
        found = request.app.state.login_throttle = RedisLoginThrottle(
            settings.redis_url, request.app.state.db.shared_name("login"), THROTTLE
        )
    return found


T = TypeVar("T")


def _in_redis(throttle: RedisLoginThrottle | None, call: Callable[[RedisLoginThrottle], T]) -> T | None:
    """``call(throttle)``; ``None`` when there is no Redis or it failed (the database counts)."""
    if throttle is None:
        return None
    from redis.exceptions import RedisError

    try:
        return call(throttle)
    except RedisError as exc:
        log.warning("login throttle: Redis failed (%s); counting in the database", type(exc).__name__)
        return None


@router.get("/", include_in_schema=False)
def home(request: Request) -> Response:
    return redirect(request, "/generations", status_code=302)


@router.get("/login", include_in_schema=False)
def login_form(request: Request, next: str | None = None) -> Response:  # noqa: A002
    session = load_session(request)
    if session.token is not None:
        return redirect(request, local_path(next), status_code=302)
    return page(request, "login.html", view=None, title="Log in", next=local_path(next), error=None)


def _client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


@router.post("/login", include_in_schema=False)
async def login(request: Request, form: FormDep) -> Response:
    username, password = str(form.get("username") or "").strip(), str(form.get("password") or "")
    target = local_path(str(form.get("next") or ""))
    address = _client_address(request)
    db = request.app.state.db
    previous = load_session(request).token
    in_redis = _redis_throttle(request)

    def attempt() -> tuple[str | None, float]:
        """The new session's token (``None``: refused), and how long to wait when throttled."""
        subjects = [user_subject(username), address_subject(address)]
        with db.read() as conn:
            # Both stores are asked: a lock made in the database while Redis was down still holds.
            wait = max(
                THROTTLE.wait_seconds(conn, subjects),
                _in_redis(in_redis, lambda r: r.wait_seconds(subjects)) or 0.0,
            )
        if wait > 0:
            return None, wait
        with db.read() as conn:
            user = authenticate_user(conn, username, password)
        if user is None:
            if _in_redis(in_redis, lambda r: r.failed(username, address)) is None:
                with db.transaction() as conn:
                    THROTTLE.failed(conn, username, address)
            return None, 0.0
        _in_redis(in_redis, lambda r: r.succeeded(username))
        with db.transaction() as conn:
            THROTTLE.succeeded(conn, username)
            if previous is not None:
                end_session(conn, previous)  # a login replaces the session this browser had
            return start_session(conn, user.id), 0.0

    token, wait = await run_in_threadpool(attempt) if username and password else (None, 0.0)
    if token is None:
        seconds = math.ceil(wait)
        response = page(
            request,
            "login.html",
            status_code=429 if wait > 0 else 401,
            view=None,
            title="Log in",
            next=target,
            error=(
                f"Too many failed logins: try again in {seconds} s."
                if wait > 0
                else "Wrong username or password."
            ),
            username=username,
        )
        if wait > 0:
            response.headers["Retry-After"] = str(seconds)
        return response
    load_session(request).log_in(token)
    return redirect(request, target)


@router.post("/logout", include_in_schema=False)
def logout(request: Request, view: ViewDep, _: FormDep) -> Response:
    """End the session in the database (a copy of the cookie stops working too) and in the browser."""
    session = load_session(request)
    if session.token is not None:
        with request.app.state.db.transaction() as conn:
            end_session(conn, session.token)
    session.log_out()
    return redirect(request, "/login")


@router.get("/account", include_in_schema=False)
def account(request: Request, view: ViewDep) -> Response:
    return page(request, "account.html", view=view, title="Your account", error=None)


@router.post("/account/password", include_in_schema=False)
def new_password(request: Request, view: ViewDep, form: FormDep) -> Response:
    """Change one's password: every session of the user ends, and this browser gets a new one."""
    session = load_session(request)
    current, new = str(form.get("current_password") or ""), str(form.get("new_password") or "")
    try:
        with request.app.state.db.transaction() as conn:
            change_password(conn, view.user.username, current, new)
            token = start_session(conn, view.user.id)
    except SightlineError as exc:
        return page(
            request, "account.html", status_code=400, view=view, title="Your account", error=exc.message
        )
    session.log_in(token)
    session.say("ok", "Password changed. Every other session has been signed out.")
    return redirect(request, "/account")


@router.post("/account/signout", include_in_schema=False)
def sign_out_everywhere(request: Request, view: ViewDep, _: FormDep) -> Response:
    """End every session of this user, this one included."""
    with request.app.state.db.transaction() as conn:
        end_user_sessions(conn, view.user.id)
    load_session(request).log_out()
    return redirect(request, "/login")
