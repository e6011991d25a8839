"""The API's documentation pages: ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) on ``/openapi.json``.

FastAPI's own pages load their scripts from a CDN, so they were blank on a machine without the
internet. These load them from this server (``static/vendor/``, copied from the npm registry at
install time by ``scripts/assets``, versions pinned in ``package.json``), with no inline script. Both
viewers set inline styles, which their Content-Security-Policy allows (and ReDoc's search worker,
started from a ``blob:``); scripts still come from this server only.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse

from ..dashboard.core.render import SECURITY_HEADERS, templates, vendor_present

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_VIEWERS = {
    "/docs": ("Swagger UI", ["vendor/swagger-ui/swagger-ui.css"], ["vendor/swagger-ui/swagger-ui-bundle.js"]),
    "/redoc": ("ReDoc", [], ["vendor/redoc/redoc.standalone.js"]),
}


def _viewer(request: Request, path: str) -> HTMLResponse:
    viewer, styles, scripts = _VIEWERS[path]
    html = templates.get_template("api_docs.html").render(
        title=f"{request.app.title} API - {viewer}",
        viewer=viewer,
        openapi_url=request.app.openapi_url,
        styles=styles,
        scripts=[*scripts, "api-docs.js"],
        present=all(vendor_present(s.removeprefix("vendor/")) for s in [*styles, *scripts]),
    )
    return HTMLResponse(html, headers={**SECURITY_HEADERS, "Content-Security-Policy": _CSP})


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI: every endpoint, with a form to try it."""
    return _viewer(request, "/docs")


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    """ReDoc: the API reference as one page."""
    return _viewer(request, "/redoc")
