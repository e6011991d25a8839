"""Saved views (a dashboard user's named filter sets of one list page), and which rows a bulk action
on a list may touch.

A saved view belongs to one user in one project, and names a list page (``generations``, ``runs``,
``chats``) and the query string that page reads: opening it is opening that address. Its name is
unique per user, project and page. Views are bounded (:data:`MAX_VIEWS` per user and project, a name
of at most :data:`MAX_NAME` characters, a query of at most :data:`MAX_QUERY` bytes) so that one user
cannot grow the table, or a page's menu, without end.

Changes are write operations (:class:`SaveView`, :class:`RenameView`, :class:`DeleteView`) applied by
the single writer; each checks its bounds and its name inside the writer's transaction, so two
saves of the same name at once make one view and a :class:`~sightline.errors.Conflict`.

A bulk action names rows by id; :func:`selected_generations` keeps the ids that are the project's,
so an id of another project (or none at all) is left out without saying which it was.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from sqlalchemy import Connection, delete, func, select, update

from ...errors import Conflict, InvalidInput, NotFound
from .. import tables as t
from ..generations.reads.queries import page_query

__all__ = [
    "MAX_NAME",
    "MAX_QUERY",
    "MAX_SELECTED",
    "MAX_VIEWS",
    "PAGES",
    "DeleteView",
    "RenameView",
    "SaveView",
    "SavedView",
    "check_name",
    "check_query",
    "get_view",
    "list_views",
    "selected_generations",
]

PAGES = ("generations", "runs", "chats")
MAX_VIEWS = 100  # per user and project, all pages together
MAX_NAME = 200
MAX_QUERY = 4096  # bytes of the query string
MAX_SELECTED = 500  # rows one bulk action may name
# Parameters of where a list is, not of what it shows: a view opens on the first page, in the
# project it was saved in.
_NOT_SAVED = frozenset({"cursor", "before", "after", "offset", "page", "project", "panel"})
v = t.saved_views


@dataclass(frozen=True, slots=True)
class SavedView:
    """One saved view: its list ``page`` and the ``query`` string that page reads."""

    id: int
    page: str
    name: str
    query: str
    created_us: int

    @property
    def path(self) -> str:
        """The view's address on this site (without the project, which the session or caller adds)."""
        return f"/{self.page}?{self.query}" if self.query else f"/{self.page}"


def check_page(page: str) -> str:
    """``page`` when it is a list page that views can be saved of; InvalidInput naming ``page``."""
    if page not in PAGES:
        raise InvalidInput(f"page: expected one of {', '.join(PAGES)}; got {page[:40]!r}", field="page")
    return page


def check_name(name: str) -> str:
    """A view's name, trimmed: 1 to :data:`MAX_NAME` characters, no control characters."""
    name = " ".join(name.split())
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"name: give the view a name of 1 to {MAX_NAME} characters", field="name")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidInput("name: no control characters", field="name")
    return name


def check_query(query: str) -> str:
    """A list's query string as a view keeps it: without paging, the project or empty fields, in the
    order given; at most :data:`MAX_QUERY` bytes (InvalidInput naming ``query``)."""
    query = query.lstrip("?")
    if "\x00" in query:
        raise InvalidInput("query: holds a NUL character", field="query")
    kept = [
        (name, value)
        for name, value in parse_qsl(query, keep_blank_values=True)
        if name not in _NOT_SAVED and value.strip()
    ]
    text = urlencode(kept)
    if len(text.encode()) > MAX_QUERY:
        raise InvalidInput(f"query: a saved filter is at most {MAX_QUERY} bytes", field="query")
    return text


def _view(row: Any) -> SavedView:
    return SavedView(row.id, row.page, row.name, row.query, row.created_us)


def list_views(conn: Connection, user_id: int, project_id: int, page: str | None = None) -> list[SavedView]:
    """The user's views in the project (of one ``page``, or all), by name."""
    q = select(v).where(v.c.user_id == user_id, v.c.project_id == project_id)
    if page is not None:
        q = q.where(v.c.page == page)
    return [_view(row) for row in conn.execute(q.order_by(v.c.page, v.c.name, v.c.id))]


def get_view(conn: Connection, user_id: int, project_id: int, view_id: int) -> SavedView:
    """One of the user's views in the project; NotFound for any other (another user's as well)."""
    return _view(_row(conn, user_id, project_id, view_id))


def _row(conn: Connection, user_id: int, project_id: int, view_id: int) -> Any:
    row = conn.execute(
        select(v).where(v.c.id == view_id, v.c.user_id == user_id, v.c.project_id == project_id)
    ).first()
    if row is None:
        raise NotFound(f"you have no saved view {view_id} in this project")
    return row


def _name_taken(conn: Connection, user_id: int, project_id: int, page: str, name: str) -> bool:
    q = select(v.c.id).where(
        v.c.user_id == user_id, v.c.project_id == project_id, v.c.page == page, v.c.name == name
    )
    return conn.execute(q).first() is not None


def _conflict(name: str, page: str) -> Conflict:
    return Conflict(f"name: you already have a view of {page} called {name!r}", field="name")


@dataclass(slots=True)
class SaveView:
    """Save a new view; answers it. Conflict naming ``name`` when the user has one of that name on the
    page; InvalidInput naming ``name`` past :data:`MAX_VIEWS`."""

    user_id: int
    project_id: int
    page: str
    name: str
    query: str
    now_us: int
    size: int = 1

    def __post_init__(self) -> None:
        self.page = check_page(self.page)
        self.name = check_name(self.name)
        self.query = check_query(self.query)

    def apply(self, conn: Connection) -> SavedView:
        count = conn.scalar(
            select(func.count()).where(v.c.user_id == self.user_id, v.c.project_id == self.project_id)
        )
        if int(count or 0) >= MAX_VIEWS:
            raise InvalidInput(
                f"name: you have {MAX_VIEWS} saved views in this project, the most there can be: "
                "delete one first",
                field="name",
            )
        if _name_taken(conn, self.user_id, self.project_id, self.page, self.name):
            raise _conflict(self.name, self.page)
        view_id = conn.execute(
            v.insert()
            .values(
                user_id=self.user_id,
                project_id=self.project_id,
                page=self.page,
                name=self.name,
                query=self.query,
                created_us=self.now_us,
            )
            .returning(v.c.id)
        ).scalar_one()
        return SavedView(int(view_id), self.page, self.name, self.query, self.now_us)


@dataclass(slots=True)
class RenameView:
    """Give one of the user's views a new name; answers it (Conflict naming ``name`` if taken)."""

    user_id: int
    project_id: int
    view_id: int
    name: str
    size: int = 1

    def __post_init__(self) -> None:
        self.name = check_name(self.name)

    def apply(self, conn: Connection) -> SavedView:
        row = _row(conn, self.user_id, self.project_id, self.view_id)
        if row.name != self.name:
            if _name_taken(conn, self.user_id, self.project_id, row.page, self.name):
                raise _conflict(self.name, row.page)
            conn.execute(update(v).where(v.c.id == row.id).values(name=self.name))
        return SavedView(row.id, row.page, self.name, row.query, row.created_us)


@dataclass(slots=True)
class DeleteView:
    """Delete one of the user's views; answers what it was."""

    user_id: int
    project_id: int
    view_id: int
    size: int = 1

    def apply(self, conn: Connection) -> SavedView:
        row = _row(conn, self.user_id, self.project_id, self.view_id)
        conn.execute(delete(v).where(v.c.id == row.id))
        return _view(row)


def selected_generations(conn: Connection, project_id: int, ids: Iterable[str]) -> dict[str, str]:
    """Of ``ids`` (at most :data:`MAX_SELECTED`), those of the project's generations, each with its
    environment (what its feedback and scores are written with). Others are left out silently: an id
    of another project reads exactly as one that does not exist."""
    wanted = sorted(set(ids))
    if len(wanted) > MAX_SELECTED:
        raise InvalidInput(f"ids: select at most {MAX_SELECTED} rows at once", field="ids")
    if not wanted:
        return {}
    g = t.generations
    q = page_query(
        {"id": {"$in": wanted}}, project_id, len(wanted), None, (g.c.id, g.c.environment, g.c.ts_us)
    )
    return {row.id: row.environment for row in conn.execute(q)}
