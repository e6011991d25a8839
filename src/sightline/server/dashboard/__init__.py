"""The dashboard: server-rendered pages (Jinja2) over the same store queries the API uses, at ``/``.

    core/     how a page is made: render.py (templates, errors, safe links), context.py (who is
              looking, at which project), session.py, formatting.py, timerange.py, display.py
              (the theme and clock switches)
    lists/    the data: generations.py (the list with its columns.py, one generation, feedback),
              runs.py and run_tree.py (runs as trees, chats), users.py (an end user's page),
              views.py (saved views and bulk actions)
    tools/    analytics.py, prompts.py and prompt_editor.py (versions, diff, try a version),
              pipelines.py (functions and pipelines), evals.py (evaluators, datasets, experiments)
    access/   auth.py (log in and out), admin.py (users, API keys, provider keys),
              operations.py (the audit log, retention, limits and spend)

Pages work without JavaScript; ``static/*.js`` only adds to them (charts, live filters, the side panel,
keys, local times). Chart and highlighting libraries come from npm at install time (``scripts/assets``).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI
from starlette.responses import RedirectResponse
from starlette.staticfiles import StaticFiles

from .access import admin, auth, operations
from .core import display
from .core.context import html_errors
from .core.render import STATIC_DIR
from .lists import generations, runs, users, views
from .tools import analytics, evals, pipelines, prompts

__all__ = ["install", "router"]

router = APIRouter(dependencies=[Depends(html_errors)], include_in_schema=False)
for _module in (auth, generations, runs, analytics, prompts, pipelines, evals, admin, operations, views):
    router.include_router(_module.router)
for _module in (display, users):
    router.include_router(_module.router)


@router.get("/favicon.ico")
def favicon() -> RedirectResponse:
    """Where browsers look for an icon by themselves (the API docs, a JSON view): the dashboard's."""
    return RedirectResponse("/static/favicon.svg", status_code=301)


def install(app: FastAPI) -> None:
    """Serve the dashboard pages and their static files on ``app``."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")
