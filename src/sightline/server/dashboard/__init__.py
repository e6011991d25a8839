"""The dashboard: server-rendered pages (Jinja2) over the same store queries the API uses, at ``/``.

    auth.py         log in and out
    generations.py  the generations table with its filters, one generation, feedback
    runs.py         runs, one run's steps, chats
    analytics.py    charts of requests, tokens, cost, latency, errors and the cache
    prompts.py      templates, their versions and the difference between two
    pipelines.py    functions (and their sync), pipelines with live validation and an execution form
    evals.py        evaluators (online, backfills), datasets, experiments and their comparison
    admin.py        users and roles, API keys, provider keys (admins only)
    operations.py   the audit log, retention policies, rate limits and spend (admins only)

Pages work without JavaScript; ``static/app.js`` only adds to them (charts, auto-submitting pickers,
local times). Chart and highlighting libraries come from npm at install time (``scripts/assets``).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI
from starlette.responses import RedirectResponse
from starlette.staticfiles import StaticFiles

from . import (
    admin,
    analytics,
    auth,
    display,
    evals,
    generations,
    operations,
    pipelines,
    prompts,
    runs,
    users,
    views,
)
from .context import html_errors
from .render import STATIC_DIR

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
