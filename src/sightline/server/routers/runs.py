"""Runs (pipeline runs, chains) with their steps."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ...errors import InvalidInput
from ...store.generations.reads.runs import get_run, list_runs
from ..auth import ApiKeyDep
from ..responses import JSON

router = APIRouter(tags=["runs"])


@router.get("/api/runs", summary="List runs, newest first")
def list_(
    request: Request,
    key: ApiKeyDep,
    userId: str | None = None,
    pipelineSlug: str | None = None,  # noqa: N803
    status: str | None = None,
    q: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> JSON:
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit: expected a whole number from 1 to 1000", field="limit")
    with request.app.state.db.read() as conn:
        page = list_runs(
            conn,
            key.project_id,
            user_id=userId,
            pipeline_slug=pipelineSlug,
            status=status,
            q=q,
            limit=limit,
            cursor=cursor,
        )
    return JSON({"data": page.data, "nextCursor": page.next_cursor})


@router.get("/api/runs/{run_id}", summary="One run with its steps in order")
def get(run_id: str, request: Request, key: ApiKeyDep) -> JSON:
    with request.app.state.db.read() as conn:
        return JSON(get_run(conn, key.project_id, run_id))
