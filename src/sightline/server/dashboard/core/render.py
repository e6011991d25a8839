"""Turning pages into responses: the Jinja2 environment, its filters, security headers, error pages.

Templates autoescape everything; no template marks user-supplied text safe. Values for charts
travel as JSON in ``<script type="application/json">`` (``|tojson`` escapes ``<``, ``>`` and ``&``),
read by the page's own script: the Content-Security-Policy allows no inline script at all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from jinja2 import Environment, FileSystemLoader, Undefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ....errors import AuthenticationError, SightlineError
from .session import load_session, save_session

__all__ = [
    "CLOCKS",
    "CLOCK_COOKIE",
    "STATIC_DIR",
    "THEMES",
    "THEME_COOKIE",
    "display_choice",
    "error_page",
    "feedback_parts",
    "local_path",
    "page",
    "redirect",
    "safe_link",
    "url_with",
]

_SERVER = Path(__file__).resolve().parents[2]
TEMPLATE_DIR = _SERVER / "templates"
STATIC_DIR = _SERVER / "static"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


# How a person likes the pages shown, kept in cookies (not in the session) so the login page and a
# fresh session look the same; read here so <html> carries them before the first paint (the CSP
# allows no inline script to set them, and app.js runs after the page has painted).
THEME_COOKIE, CLOCK_COOKIE = "sightline_theme", "sightline_clock"
THEMES = ("auto", "light", "dark")  # auto: follow the system's setting
CLOCKS = ("local", "utc")  # local: the browser's time zone (app.js turns the UTC text into it)


def display_choice(request: Request, cookie: str, choices: tuple[str, ...]) -> str:
    """The value of a display cookie when it is one of ``choices``, else the first (the default)."""
    value = request.cookies.get(cookie, "")
    return value if value in choices else choices[0]


def _number(value: Any) -> float | None:
    """A number to show, or ``None`` for no value (``None``, or a field the record leaves out)."""
    if value is None or isinstance(value, Undefined | bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _time(value: Any, seconds: bool = True) -> str:
    """A time as ``2026-11-20 10:00:00`` (UTC): microseconds or ISO 8601 text."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value or "—"
    else:
        us = _number(value)
        if us is None:
            return "—"
        moment = datetime.fromtimestamp(us / 1_000_000, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def _iso(value: Any) -> str:
    if isinstance(value, str):
        return value
    us = _number(value)
    if us is None:
        return ""
    return datetime.fromtimestamp(us / 1_000_000, UTC).isoformat().replace("+00:00", "Z")


def _cost(value: Any) -> str:
    number = _number(value)
    if number is None:
        return "—"
    if number == 0:
        return "$0"
    if abs(number) >= 100:
        return f"${number:,.0f}"
    if abs(number) >= 1:
        return f"${number:,.2f}"
    digits = min(max(2, 2 - math.floor(math.log10(abs(number)))), 8)  # three significant digits
    return "$" + f"{number:.{digits}f}".rstrip("0").rstrip(".")


def _ms(value: Any) -> str:
    number = _number(value)
    if number is None:
        return "—"
    if number >= 10_000:
        return f"{number / 1000:,.1f} s"
    if number >= 1000:
        return f"{number / 1000:.2f} s"
    return f"{number:.0f} ms"


def _num(value: Any, digits: int = 0) -> str:
    number = _number(value)
    return "—" if number is None else f"{number:,.{digits}f}"


def _pct(value: Any) -> str:
    number = _number(value)
    return "—" if number is None else f"{number * 100:.1f}%"


def _segment(value: Any) -> str:
    """A value as one path segment of an address (a run id may hold ``/`` or ``?``)."""
    return quote(str(value), safe="")


def _score_shown(value: Any) -> str:
    return f"{round(float(value), 2):g}"


def feedback_parts(fb: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """A feedback's judgements as ``(kind, text, title)``: ``rating`` ``★4`` (1 to 5 stars, given in the
    dashboard or the API), ``score`` ``score 0.8`` (0 to 1: what the SDK and libretto call a rating),
    ``up``/``down`` thumbs. Two scales, each named, so 0.8 never reads as stars nor 4 as a score."""
    if not fb:
        return []
    parts = []
    if fb.get("rating") is not None:
        parts.append(("rating", f"★{fb['rating']}", f"rating: {fb['rating']} of 5 stars"))
    if fb.get("score") is not None:
        shown = _score_shown(fb["score"])
        parts.append(("score", f"score {shown}", f"score: {shown} on a scale of 0 to 1"))
    if fb.get("thumbs") == "up":
        parts.append(("up", "▲", "thumbs up"))
    elif fb.get("thumbs") == "down":
        parts.append(("down", "▼", "thumbs down"))
    return parts


def safe_link(url: Any) -> str | None:
    """``url`` when it is safe to put in an ``href`` (http, https, mailto), else ``None``.

    A ``javascript:`` or ``data:`` address from a record's metadata must never become a link.
    """
    if not isinstance(url, str):
        return None
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return None
    return url.strip() if scheme in ("http", "https", "mailto") else None


def local_path(target: str | None, default: str = "/generations") -> str:
    """``target`` when it is a path on this site (no open redirect to another host), else ``default``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def url_with(base: str, params: Mapping[str, Any], **changes: Any) -> str:
    """``base`` with ``params`` as its query, after ``changes`` (``None`` removes a parameter)."""
    merged = {k: v for k, v in params.items() if v is not None and v != ""}
    for name, value in changes.items():
        key = name.replace("__", ".")
        if value is None or value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    query = urlencode(merged)
    return f"{base}?{query}" if query else base


@lru_cache(maxsize=256)
def _static_version(path: str) -> str:
    try:
        return str(int((STATIC_DIR / path).stat().st_mtime))
    except OSError:
        return "0"


def static_url(path: str) -> str:
    """The address of a static file, with its modification time so browsers fetch changes."""
    return f"/static/{path}?v={_static_version(path)}"


def vendor_present(path: str) -> bool:
    """Whether ``scripts/assets`` has copied the npm package file ``static/vendor/<path>`` in."""
    return (STATIC_DIR / "vendor" / path).is_file()


def _build_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=select_autoescape(["html"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(time=_time, iso=_iso, cost=_cost, ms=_ms, num=_num, pct=_pct, seg=_segment)
    env.globals.update(
        url_with=url_with, safe_link=safe_link, static_url=static_url, vendor_present=vendor_present
    )
    env.globals["feedback_parts"] = feedback_parts
    return env


templates = _build_environment()


def _respond(request: Request, response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    save_session(request, response)
    return response


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    """Render ``template`` with ``context`` (plus ``request`` and the session's one-time message)."""
    session = load_session(request)
    context.setdefault("flash", session.take_flash())
    context.setdefault("csrf", session.csrf)
    context.setdefault("theme", display_choice(request, THEME_COOKIE, THEMES))
    context.setdefault("clock", display_choice(request, CLOCK_COOKIE, CLOCKS))
    html = templates.get_template(template).render(request=request, **context)
    return _respond(request, HTMLResponse(html, status_code=status_code))


def redirect(request: Request, url: str, status_code: int = 303) -> Response:
    """A redirect (303: the browser follows with GET) that also carries the session."""
    return _respond(request, RedirectResponse(url, status_code=status_code))


def error_page(request: Request, exc: SightlineError) -> Response:
    """How the dashboard shows an error: to the login page when not logged in, else an HTML page."""
    if isinstance(exc, AuthenticationError):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return redirect(request, url_with("/login", {"next": target}))
    view = getattr(request.state, "view", None)
    titles = {400: "Bad request", 403: "Not allowed", 404: "Not found", 409: "Conflict"}
    return page(
        request,
        "error.html",
        status_code=exc.status_code,
        view=view,
        title=titles.get(exc.status_code, "Something went wrong"),
        message=exc.message,
        status=exc.status_code,
    )
