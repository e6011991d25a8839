"""One end user of the application (the ``userId`` of generations): what they asked, cost and thought of it.

Everything here is a read the rest of the dashboard already makes: the totals line of the generations
list (:func:`filter_totals`), aggregation pipelines through the one query compiler, and a page of the
list itself. End users are not dashboard accounts: they are whoever the application names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import Connection
from starlette.responses import Response

from ....errors import NotFound, QueryTimeout
from ....store.evals.scores import score_trends
from ....store.generations.reads.analytics import window
from ....store.generations.reads.queries import list_rows
from ....store.generations.reads.totals import Totals, filter_totals
from ....store.mongo.aggregate import aggregate
from ....store.mongo.fields import time_value
from ..core.context import ViewDep
from ..core.formatting import Row, row
from ..core.render import page, url_with

__all__ = ["UserSummary", "router", "user_summary"]

router = APIRouter()

_TOP, _RECENT, _SCORE_NAMES = 5, 10, 8


@dataclass
class Ranked:
    """A model or template of the user's: how often they used it and what it cost."""

    key: str
    requests: int
    cost: float


@dataclass
class UserSummary:
    """What the page of one end user shows, computed before the template sees it."""

    user_id: str
    totals: Totals | None  # None: past the time budget
    first_seen: str
    last_seen: str
    errors: int
    cache_hits: int
    ratings: list[tuple[int, int]]  # (stars, how many), 5 stars first
    rating_average: float | None
    score_average: float | None  # the feedback's 0-1 score (the SDK's rating)
    score_count: int
    thumbs_up: int
    thumbs_down: int
    scores: list[tuple[str, float]]  # latest score of each name, averaged over the user's generations
    models: list[Ranked] = field(default_factory=list)
    templates: list[Ranked] = field(default_factory=list)
    recent: list[Row] = field(default_factory=list)

    @property
    def rated(self) -> int:
        return sum(n for _, n in self.ratings)


def _counts(
    conn: Connection, project_id: int, match: dict[str, Any], env: str | None, path: str
) -> dict[Any, int]:
    found = aggregate(
        conn, project_id, [{"$match": match}, {"$group": {"_id": path, "n": {"$sum": 1}}}], environment=env
    )
    return {doc["_id"]: int(doc["n"]) for doc in found}


def _count(conn: Connection, project_id: int, match: dict[str, Any], env: str | None) -> int:
    found = aggregate(conn, project_id, [{"$match": match}, {"$count": "n"}], environment=env)
    return int(found[0]["n"]) if found else 0


def _ranked(
    conn: Connection, project_id: int, match: dict[str, Any], env: str | None, path: str
) -> list[Ranked]:
    stages = [
        {"$match": {**match, path[1:]: {"$exists": True, "$ne": None}}},
        {"$group": {"_id": path, "n": {"$sum": 1}, "cost": {"$sum": "$usage.cost"}}},
        {"$sort": {"n": -1, "_id": 1}},
        {"$limit": _TOP},
    ]
    found = aggregate(conn, project_id, stages, environment=env)
    return [Ranked(str(d["_id"]), int(d["n"]), float(d["cost"] or 0)) for d in found]


def _score_averages(
    conn: Connection, project_id: int, match: dict[str, Any], env: str | None, first_us: int, last_us: int
) -> list[tuple[str, float]]:
    """The averages of the scores named most often in the project while the user was active (the
    feedback's own scores are shown as feedback)."""
    names = [
        s.name
        for s in score_trends(conn, project_id, window(first_us, last_us + 1), env, limit=_SCORE_NAMES + 3)
        if not s.name.startswith("feedback.")
    ][:_SCORE_NAMES]
    if not names:
        return []
    group: dict[str, Any] = {"_id": None}
    group.update({f"s{i}": {"$avg": f"$scores.{name}.value"} for i, name in enumerate(names)})
    (doc,) = aggregate(conn, project_id, [{"$match": match}, {"$group": group}], environment=env)
    return [(name, float(doc[f"s{i}"])) for i, name in enumerate(names) if doc.get(f"s{i}") is not None]


def user_summary(conn: Connection, project_id: int, environment: str | None, user_id: str) -> UserSummary:
    """The page of ``user_id``: NotFound when they have no generations (in this environment)."""
    match: dict[str, Any] = {"metadata.userId": user_id}
    overall = aggregate(
        conn,
        project_id,
        [
            {"$match": match},
            {
                "$group": {
                    "_id": None,
                    "n": {"$sum": 1},
                    "first": {"$min": "$timestamp"},
                    "last": {"$max": "$timestamp"},
                    "rating": {"$avg": "$feedback.rating"},
                    "score": {"$avg": "$feedback.score"},
                }
            },
        ],
        environment=environment,
    )
    if not overall or not overall[0]["n"]:
        raise NotFound(f"no generations of user {user_id!r} in this project")
    head = overall[0]
    # The list's own filter (aggregate takes the environment apart).
    scoped = {**match, "environment": environment} if environment else match
    try:
        totals: Totals | None = filter_totals(conn, project_id, scoped)
    except QueryTimeout:
        totals = None
    stars = _counts(conn, project_id, match, environment, "$feedback.rating")
    thumbs = _counts(conn, project_id, match, environment, "$feedback.thumbs")
    status = _counts(conn, project_id, match, environment, "$status")
    cached = _counts(conn, project_id, match, environment, "$cacheHit")
    with_score = {**match, "feedback.score": {"$exists": True, "$ne": None}}
    scored = _count(conn, project_id, with_score, environment)
    first_us, last_us = time_value("first", head["first"]), time_value("last", head["last"])
    recent = list_rows(conn, project_id, scoped, _RECENT)
    return UserSummary(
        user_id=user_id,
        totals=totals,
        first_seen=head["first"],
        last_seen=head["last"],
        errors=status.get("error", 0),
        cache_hits=cached.get(True, 0),
        ratings=[(n, stars.get(n, 0)) for n in range(5, 0, -1)],
        rating_average=head["rating"],
        score_average=head["score"],
        score_count=scored,
        thumbs_up=thumbs.get("up", 0),
        thumbs_down=thumbs.get("down", 0),
        scores=_score_averages(conn, project_id, match, environment, first_us, last_us),
        models=_ranked(conn, project_id, match, environment, "$model.id"),
        templates=_ranked(conn, project_id, match, environment, "$template.name"),
        recent=[row(g) for g in recent.data],
    )


@router.get("/users/{user_id:path}", include_in_schema=False)
def user_page(user_id: str, request: Request, view: ViewDep) -> Response:
    """One end user: totals, feedback and scores, their models and templates, their latest requests."""
    if view.project is None:
        return page(request, "empty.html", view=view, title="Users")
    with request.app.state.db.read() as conn:
        summary = user_summary(conn, view.project_id, view.environment, user_id)
    return page(
        request,
        "user.html",
        view=view,
        title=f"User {user_id}",
        u=summary,
        requests_url=url_with("/generations", view.scope, userId=user_id),
    )
