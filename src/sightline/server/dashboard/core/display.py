"""How pages are shown to this browser: light, dark or the system's theme, and times in local time or UTC.

The choices live in two plain cookies (not secrets, readable by ``app.js``, which sets them itself
and applies them at once); this form is the road without JavaScript. ``render.page`` reads them so
``<html>`` carries ``data-theme`` and ``data-clock`` before the first paint.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from ....errors import InvalidInput
from .context import FormDep
from .render import CLOCK_COOKIE, CLOCKS, THEME_COOKIE, THEMES, local_path, redirect

__all__ = ["router"]

router = APIRouter()

_YEAR = 365 * 24 * 3600


@router.post("/display", include_in_schema=False)
def set_display(request: Request, form: FormDep) -> Response:
    """Remember the theme and time zone picked in the top bar, and go back to the page."""
    response = redirect(request, local_path(str(form.get("next") or "")))
    for name, cookie, choices in (("theme", THEME_COOKIE, THEMES), ("clock", CLOCK_COOKIE, CLOCKS)):
        value = str(form.get(name) or "")
        if not value:
            continue
        if value not in choices:
            raise InvalidInput(f"{name}: expected one of {', '.join(choices)}; got {value!r}", field=name)
        response.set_cookie(cookie, value, max_age=_YEAR, samesite="lax", path="/")
    return response
