"""Who is looking, and at what: the logged-in user, and the project and environment picked.

Every page depends on :data:`ViewDep` (logged in), admin pages on :data:`AdminDep`, and every form
post on :data:`FormDep` (the form, once its CSRF token is checked). The picked project and
environment live in the session; a page address may carry ``project=<name>`` and
``environment=<name>`` (shared links do), which also become the session's pick.
Every user, admin or member, sees every project: there is no per-project membership.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.datastructures import FormData

from ....errors import AuthenticationError, NotFound, PermissionDenied
from ....store.access.projects import User, list_environments, list_projects
from ....store.access.sessions import session_user
from .render import error_page
from .session import check_csrf, load_session

__all__ = ["AdminDep", "FormDep", "View", "ViewDep", "html_errors"]


@dataclass
class View:
    """The context every page renders with."""

    user: User
    projects: list[dict[str, Any]]
    project: dict[str, Any] | None
    environments: list[str]
    environment: str | None
    section: str = ""
    scope: dict[str, str] = field(default_factory=dict)

    @property
    def is_admin(self) -> bool:
        return self.user.role == "admin"

    @property
    def project_id(self) -> int:
        if self.project is None:
            raise NotFound("there is no project yet: create an API key (Admin → API keys) to make one")
        return int(self.project["id"])


def html_errors(request: Request) -> None:
    """Errors raised while serving a dashboard page are shown as HTML (or lead to the login page)."""
    request.state.error_renderer = error_page


def _section(path: str) -> str:
    first = path.strip("/").split("/", 1)[0]
    return first or "generations"


def current_view(request: Request) -> View:
    """The logged-in user and what they look at; ``AuthenticationError`` when nobody is logged in.

    The session is checked against the database on every request, so one ended elsewhere (logout
    in another tab, a password change, the user disabled or removed) stops working at once.
    """
    session = load_session(request)
    if session.token is None:
        raise AuthenticationError("log in to see the dashboard")
    db = request.app.state.db
    params = request.query_params
    with db.read() as conn:
        user = session_user(conn, session.token)
        if user is None:
            session.log_out()
            raise AuthenticationError("your session has ended: log in again")
        projects = list_projects(conn)
        project = None
        wanted = params.get("project")
        if wanted:
            project = next((p for p in projects if p["name"] == wanted), None)
            if project is None:
                raise NotFound(f"no project {wanted!r}")
        if project is None and session.project_id is not None:
            project = next((p for p in projects if p["id"] == session.project_id), None)
        if project is None and projects:
            project = projects[0]
        environments = list_environments(conn, project["id"]) if project else []
    environment = session.environment if project and project["id"] == session.project_id else None
    if "environment" in params:
        environment = params["environment"] or None
    if environment is not None and environment not in environments:
        environment = None
    session.update(project_id=project["id"] if project else None, environment=environment)
    scope = {}
    if project is not None:
        scope["project"] = str(project["name"])
        if environment:
            scope["environment"] = environment
    view = View(user, projects, project, environments, environment, _section(request.url.path), scope)
    request.state.view = view
    return view


def admin_view(view: Annotated[View, Depends(current_view)]) -> View:
    """The view of an admin; a member gets 403."""
    if not view.is_admin:
        raise PermissionDenied("admin pages are for admins: ask an admin to change your role")
    return view


ViewDep = Annotated[View, Depends(current_view)]
AdminDep = Annotated[View, Depends(admin_view)]
FormDep = Annotated[FormData, Depends(check_csrf)]
