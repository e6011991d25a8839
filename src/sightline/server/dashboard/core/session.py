"""The dashboard session: a signed cookie naming a server-side session, and the CSRF token every form carries.

The cookie holds a small JSON object signed with ``settings.secret_key`` (itsdangerous): the
session's token, its CSRF token, and the project and environment being looked at. The token names
a row of the ``sessions`` table (stored as its hash), looked up on every request: deleting the row
ends the session at once, wherever the cookie was copied to (logout, a password change, the user
disabled or removed, an admin's "sign out everywhere"). A session also ends after ``MAX_AGE``.

The cookie is HttpOnly (no script reads it), SameSite=Lax (other sites' forms do not send it) and
Secure over HTTPS, or always with ``secure_cookies`` (behind a proxy that ends TLS).

Every POST form carries the session's CSRF token in a hidden ``csrf`` field, compared in constant
time (:func:`check_csrf`). The login form has one too (an anonymous session is made to hold it),
and logging in rotates it.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from ....errors import PermissionDenied
from ....store.access.sessions import SESSION_SECONDS

__all__ = ["COOKIE", "MAX_AGE", "Session", "check_csrf", "load_session", "save_session"]

COOKIE = "sightline_session"
MAX_AGE = SESSION_SECONDS
_SALT = "sightline.dashboard.session"


@dataclass
class Session:
    """What the cookie holds. ``changed`` marks that the response must send it again.

    ``token`` names the server-side session (``None``: nobody logged in); whether it is still live
    is checked against the database by the page's dependency (``context.current_view``).
    """

    token: str | None = None
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    project_id: int | None = None
    environment: str | None = None
    flash: tuple[str, str] | None = None
    changed: bool = False

    def update(self, **values: Any) -> None:
        for name, value in values.items():
            if getattr(self, name) != value:
                setattr(self, name, value)
                self.changed = True

    def log_in(self, token: str) -> None:
        """Hold the new server-side session ``token`` (a new CSRF token: no fixation of the old one)."""
        self.update(token=token, csrf=secrets.token_urlsafe(24))

    def log_out(self) -> None:
        """Forget the session in this cookie (the caller ends it in the database)."""
        self.update(token=None, csrf=secrets.token_urlsafe(24), project_id=None, environment=None)

    def say(self, kind: str, message: str) -> None:
        """A message for the next page shown (after a redirect): ``kind`` is ``ok`` or ``error``."""
        self.update(flash=(kind, message))

    def take_flash(self) -> tuple[str, str] | None:
        message = self.flash
        if message is not None:
            self.update(flash=None)
        return message


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=_SALT)


def load_session(request: Request) -> Session:
    """The request's session (cached on the request), or a new anonymous one."""
    cached = getattr(request.state, "session", None)
    if isinstance(cached, Session):
        return cached
    session = Session(changed=True)
    raw = request.cookies.get(COOKIE)
    if raw:
        try:
            data = _serializer(request.app.state.settings.secret_key).loads(raw, max_age=MAX_AGE)
        except BadSignature:
            data = None
        if isinstance(data, dict) and isinstance(data.get("c"), str):
            flash = data.get("f")
            session = Session(
                token=data.get("s") if isinstance(data.get("s"), str) else None,
                csrf=data["c"],
                project_id=data.get("p") if isinstance(data.get("p"), int) else None,
                environment=data.get("e") if isinstance(data.get("e"), str) else None,
                flash=(str(flash[0]), str(flash[1])) if isinstance(flash, list) and len(flash) == 2 else None,
            )
    request.state.session = session
    return session


def save_session(request: Request, response: Response) -> None:
    """Send the session cookie again when the session changed during the request."""
    session = getattr(request.state, "session", None)
    if not isinstance(session, Session) or not session.changed:
        return
    data: dict[str, Any] = {
        "s": session.token,
        "c": session.csrf,
        "p": session.project_id,
        "e": session.environment,
    }
    if session.flash is not None:
        data["f"] = list(session.flash)
    value = _serializer(request.app.state.settings.secret_key).dumps(data)
    response.set_cookie(
        COOKIE,
        value,
        max_age=MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=request.app.state.settings.secure_cookies or request.url.scheme == "https",
        path="/",
    )


async def check_csrf(request: Request) -> FormData:
    """The posted form, once its CSRF token is this session's (else it is a forged cross-site request)."""
    form = await request.form()
    sent = form.get("csrf")
    expected = load_session(request).csrf
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise PermissionDenied(
            "this form has expired or did not come from Sightline: reload the page and retry"
        )
    return form
