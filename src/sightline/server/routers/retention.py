"""Retention policies and erasure of one end user's data, for the key's project.

``PUT /api/retention`` sets a policy (``deleteAfterDays`` or ``anonymiseAfterDays``, for one
``environment`` or all), ``GET /api/retention`` lists them with when each last ran and what it
removed, ``DELETE /api/retention`` removes one; ``DELETE /api/users/{userId}`` erases (or, with
``?anonymise=true``, anonymises) everything of one end user. Policies are applied by the periodic
``retention.apply`` job (``sightline retention run`` on demand). Every change is in the audit log.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request

from ...errors import InvalidInput
from ...jobs.retention import erase_user
from ...store.retention import RemovePolicy, SetPolicy, check_policy, get_policies
from ..auth import ApiKeyDep, actor
from ..body import read_json
from ..responses import JSON

router = APIRouter(tags=["retention"])


def _environment(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise InvalidInput(
            "environment: a name of 1 to 64 characters (leave it out for all)", field="environment"
        )
    return value


@router.put("/api/retention", summary="Set the retention policy of the project (or of one environment)")
async def set_policy(request: Request, key: ApiKeyDep) -> JSON:
    """Body: ``{"environment"?, "deleteAfterDays": N}`` or ``{"environment"?, "anonymiseAfterDays": N}``."""
    body = await read_json(request)
    for name in sorted(set(body) - {"environment", "deleteAfterDays", "anonymiseAfterDays"}):
        raise InvalidInput(f"{name}: unknown field of a retention policy", field=name)
    given = [name for name in ("deleteAfterDays", "anonymiseAfterDays") if name in body]
    if len(given) != 1:
        raise InvalidInput(
            "give exactly one of deleteAfterDays and anonymiseAfterDays", field="deleteAfterDays"
        )
    action = "delete" if given[0] == "deleteAfterDays" else "anonymise"
    try:
        action, days = check_policy(action, body[given[0]])
    except InvalidInput:
        raise InvalidInput(f"{given[0]}: a whole number of days from 1 to 36500", field=given[0]) from None
    op = SetPolicy(
        key.project_id,
        _environment(body.get("environment")),
        action,
        days,
        actor(request, key),
        time.time_ns() // 1000,
    )
    policy = await request.app.state.db.writer.write(op)
    return JSON(policy.wire())


@router.get("/api/retention", summary="The project's retention policies, with their last runs")
def list_(request: Request, key: ApiKeyDep) -> JSON:
    with request.app.state.db.read() as conn:
        return JSON({"data": [p.wire() for p in get_policies(conn, key.project_id)]})


@router.delete("/api/retention", summary="Remove a retention policy")
async def remove(request: Request, key: ApiKeyDep, environment: str | None = None) -> JSON:
    op = RemovePolicy(key.project_id, _environment(environment), actor(request, key), time.time_ns() // 1000)
    await request.app.state.db.writer.write(op)
    return JSON({"removed": True})


@router.delete("/api/users/{user_id:path}", summary="Erase everything of one end user of the project")
async def erase(user_id: str, request: Request, key: ApiKeyDep, anonymise: bool = False) -> JSON:
    """Deletes the user's generations (with their metadata, feedback, scores and the dataset items
    taken from them), runs and the feedback they gave; ``?anonymise=true`` keeps the generations'
    figures and drops their content. Answers the counts; the audit log keeps a digest of the id."""
    if not user_id or len(user_id) > 200 or "\x00" in user_id:
        raise InvalidInput("userId: 1 to 200 characters", field="userId")
    counts = await erase_user(
        request.app.state.db, key.project_id, user_id, actor(request, key), anonymise=anonymise
    )
    return JSON(counts)
