"""Saved views in the store, through the real writer, on SQLite and PostgreSQL: bounds, unique names per
user and page, rename and delete of one's own only; and the rows a bulk action may touch."""

from __future__ import annotations

import pytest

from sightline.errors import Conflict, InvalidInput, NotFound
from sightline.schema import Generation
from sightline.store import Database
from sightline.store.access.projects import create_key, create_user
from sightline.store.access.views import (
    MAX_QUERY,
    MAX_VIEWS,
    DeleteView,
    RenameView,
    SaveView,
    get_view,
    list_views,
    selected_generations,
)
from sightline.store.generations.ingest import InsertGenerations, prepare_generation
from sightline.store.generations.records import Scope


def _users(db: Database) -> tuple[int, int]:
    with db.transaction() as conn:
        return create_user(conn, "ann", "a-long-password").id, create_user(conn, "bo", "a-long-password").id


def _save(
    db: Database, user: int, name: str, query: str = "userId=alice", page: str = "generations"
) -> object:
    return db.writer.write_sync(SaveView(user, 1, page, name, query, 1_000))


def test_a_view_keeps_its_filter_without_paging_and_only_its_owner_sees_it(db: Database) -> None:
    ann, bo = _users(db)
    saved = _save(
        db, ann, "  Alice's   errors ", "?userId=alice&status=error&cursor=abc&project=demo&model.id="
    )
    assert saved.name == "Alice's errors"  # spaces folded
    assert saved.query == "userId=alice&status=error"
    assert saved.path == "/generations?userId=alice&status=error"
    with db.read() as conn:
        assert [x.name for x in list_views(conn, ann, 1, "generations")] == ["Alice's errors"]
        assert list_views(conn, bo, 1) == [] and list_views(conn, ann, 2) == []
        assert get_view(conn, ann, 1, saved.id) == saved
        with pytest.raises(NotFound):
            get_view(conn, bo, 1, saved.id)
    # another user, page or project may use the same name
    _save(db, bo, "Alice's errors")
    _save(db, ann, "Alice's errors", page="runs")


def test_names_are_unique_per_user_and_page_and_bounded(db: Database) -> None:
    ann, bo = _users(db)
    first = _save(db, ann, "mine")
    with pytest.raises(Conflict) as taken:
        _save(db, ann, "mine", "status=ok")
    assert taken.value.field == "name"
    other = _save(db, ann, "other")
    with pytest.raises(Conflict):
        db.writer.write_sync(RenameView(ann, 1, other.id, "mine"))
    with pytest.raises(NotFound):  # another user's view cannot be renamed or deleted
        db.writer.write_sync(RenameView(bo, 1, first.id, "stolen"))
    with pytest.raises(NotFound):
        db.writer.write_sync(DeleteView(bo, 1, first.id))
    renamed = db.writer.write_sync(RenameView(ann, 1, first.id, "renamed"))
    assert renamed.name == "renamed" and renamed.query == first.query
    assert db.writer.write_sync(DeleteView(ann, 1, other.id)).name == "other"
    with db.read() as conn:
        assert [x.name for x in list_views(conn, ann, 1)] == ["renamed"]
    for bad in ("", "   ", "x" * 201, "tab\there\x01"):
        with pytest.raises(InvalidInput) as error:
            _save(db, ann, bad)
        assert error.value.field == "name"
    with pytest.raises(InvalidInput) as error:
        _save(db, ann, "long", "userId=" + "a" * MAX_QUERY)
    assert error.value.field == "query"
    with pytest.raises(InvalidInput) as error:
        _save(db, ann, "page", page="admin")
    assert error.value.field == "page"


def test_at_most_max_views_per_user_and_project(db: Database) -> None:
    ann, bo = _users(db)
    for i in range(MAX_VIEWS):
        _save(db, ann, f"view {i}")
    with pytest.raises(InvalidInput) as error:
        _save(db, ann, "one more")
    assert error.value.field == "name"
    _save(db, bo, "one more")  # the bound is per user


def test_selected_generations_are_the_projects_own(db: Database) -> None:
    with db.transaction() as conn:
        create_key(conn, "demo", "dev")
        create_key(conn, "other", "prod")
    mine = [Generation(model={"id": "gpt-4o"}) for _ in range(3)]
    theirs = Generation(model={"id": "gpt-4o"})
    for scope, gens in ((Scope(1, "dev"), mine), (Scope(2, "prod"), [theirs])):
        db.writer.write_sync(InsertGenerations(scope, [prepare_generation(g, scope) for g in gens]))
    ids = [g.id for g in mine]
    with db.read() as conn:
        found = selected_generations(conn, 1, [*ids, theirs.id, "nope", ids[0]])
        assert found == {i: "dev" for i in ids}
        assert selected_generations(conn, 2, ids) == {}
        with pytest.raises(InvalidInput) as error:
            selected_generations(conn, 1, [str(i) for i in range(501)])
        assert error.value.field == "ids"
