"""The user guide at ``/guide/``: the static site ``mkdocs build`` makes of ``docs/``.

``scripts/setup`` builds it into ``server/guide_site/`` (not in git). Before it is built, every guide
address answers a page saying how to build it, never an error. The pages are the theme's, with a few
small inline scripts (colour scheme, paths) and no others: rather than allow inline scripts, each
HTML page's Content-Security-Policy names the SHA-256 of exactly the inline scripts it holds, so
scripts still come from this server only.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import mimetypes
import re
from pathlib import Path

from fastapi import APIRouter
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from ..dashboard.core.render import SECURITY_HEADERS

__all__ = ["GUIDE_DIR", "router"]

router = APIRouter(include_in_schema=False)

GUIDE_DIR = Path(__file__).resolve().parent.parent / "guide_site"
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)([^>]*)>(.*?)</script>", re.S)
_CSP = (
    "default-src 'self'; script-src 'self'{hashes}; style-src 'self'; img-src 'self' data:; "
    "font-src 'self' data:; worker-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Guide not built · Sightline</title></head>
<body><h1>The guide is not built</h1>
<p>This server's user guide is made from <code>docs/</code> when Sightline is installed. Build it with
<code>scripts/setup</code>, or <code>mkdocs build</code> in the repository (with the <code>docs</code>
extra: <code>pip install -e '.[docs]'</code>), then reload this page.</p>
<p>The API reference is always at <a href="/docs">/docs</a> and <a href="/redoc">/redoc</a>.</p>
</body></html>
"""


@functools.lru_cache(maxsize=256)
def _script_hashes(path: Path, mtime_ns: int) -> str:
    """The CSP sources allowing the inline scripts of one page (cached until the file changes)."""
    sources = []
    for attributes, body in _INLINE_SCRIPT.findall(path.read_bytes()):
        if b"application/json" in attributes:
            continue  # data, never run: the CSP does not apply to it
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        sources.append(f" 'sha256-{digest}'")
    return "".join(sorted(set(sources)))


def _headers(path: Path) -> dict[str, str]:
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
    if path.suffix == ".html":
        hashes = _script_hashes(path, path.stat().st_mtime_ns)
        headers["Content-Security-Policy"] = _CSP.format(hashes=hashes)
    else:
        del headers["Content-Security-Policy"]  # not a document: nothing to govern
    return headers


def _find(relative: str) -> Path | None:
    """The file or folder ``relative`` names inside the built guide, or None (also for a way out)."""
    if "\x00" in relative:
        return None
    root = GUIDE_DIR.resolve()
    try:
        target = (root / relative).resolve()
    except (OSError, ValueError):
        return None
    if not target.is_relative_to(root):
        return None  # "..", or a link leading out of the guide
    return target if target.is_file() or (target / "index.html").is_file() else None


@router.get("/guide")
def guide_root() -> RedirectResponse:
    """The guide lives under ``/guide/`` (its pages' relative links need the slash)."""
    return RedirectResponse("/guide/", status_code=308)


@router.get("/guide/{path:path}", summary="The user guide")
def guide(path: str) -> Response:
    """A page or file of the built guide; a page saying how to build it when there is none."""
    if not (GUIDE_DIR / "index.html").is_file():
        # 404 rather than an error: nothing is broken, the optional guide was just never built.
        return HTMLResponse(_NOT_BUILT, status_code=404, headers=SECURITY_HEADERS)
    found = _find(path)
    if found is not None and found.is_dir():
        if path and not path.endswith("/"):
            return RedirectResponse(f"/guide/{path}/", status_code=308)
        found = found / "index.html"
    if found is None:
        missing = GUIDE_DIR / "404.html"
        if missing.is_file():
            return FileResponse(missing, status_code=404, headers=_headers(missing), media_type="text/html")
        return HTMLResponse("Not found", status_code=404, headers=SECURITY_HEADERS)
    media_type = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
    return FileResponse(found, headers=_headers(found), media_type=media_type)
