"""Rate limits and budgets of the key's project and of its keys, and what has been spent so far."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request

from ...errors import InvalidInput
from ...store.access.limits import Periods, SetLimits, check_limits, get_limits, key_spend, project_spend
from ..auth import ApiKeyDep, actor
from ..body import read_json
from ..responses import JSON

router = APIRouter(tags=["limits"])


@router.put("/api/limits", summary="Set rate limits and budgets of the project or of one of its keys")
async def set_limits(request: Request, key: ApiKeyDep) -> JSON:
    """Body: ``keyId`` (leave out: the project's), and any of ``requestsPerMinute``,
    ``tokensPerMinute``, ``costPerDay``, ``costPerMonth`` (USD), ``userRequestsPerMinute`` (per end
    user on the gateway); ``null`` removes one. Every server process applies a change within a second."""
    body = await read_json(request)
    key_id = body.pop("keyId", None) or 0
    if isinstance(key_id, bool) or not isinstance(key_id, int) or key_id < 0:
        raise InvalidInput("keyId: an API key's id", field="keyId")
    values = check_limits(body, key_id)
    by = actor(request, key)
    limits = await request.app.state.db.writer.write(
        SetLimits(key.project_id, key_id, values, by, time.time_ns() // 1000)
    )
    request.app.state.gateway.limiter.forget(key.project_id)
    return JSON(limits.wire())


@router.get("/api/limits", summary="The project's limits and what it and each of its keys has spent so far")
def get(request: Request, key: ApiKeyDep) -> JSON:
    """``spent``: the project's tokens this minute, cost today and this month; ``keys``: each key's
    requests, tokens and cost today and this month (keys that spent nothing this month left out)."""
    now_us = time.time_ns() // 1000
    at = Periods.at(now_us)
    with request.app.state.db.read() as conn:
        limits: list[Any] = [x.wire() for x in get_limits(conn, key.project_id)]
        used = project_spend(conn, key.project_id, now_us)
        month = key_spend(conn, key.project_id, at.month)
        today = key_spend(conn, key.project_id, at.day)
    keys = [
        {"keyId": key_id, "today": today[key_id].wire() if key_id in today else None, "thisMonth": s.wire()}
        for key_id, s in sorted(month.items())
    ]
    return JSON({"data": limits, "spent": used, "keys": keys})
