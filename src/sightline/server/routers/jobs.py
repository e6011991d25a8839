"""Background jobs: the state of one job of the key's project."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ...errors import InvalidInput, NotFound
from ...store.jobs import get_job
from ..auth import ApiKeyDep
from ..responses import JSON

router = APIRouter(tags=["jobs"])

_MAX_ID = 2**31 - 1  # the id column's range: anything above names no job


@router.get("/api/jobs/{job_id}", summary="One background job: its state, attempts, result or error")
def get(job_id: str, request: Request, key: ApiKeyDep) -> JSON:
    if not job_id.isascii() or not job_id.isdigit():
        raise InvalidInput("id: a job id is a whole number", field="id")
    if len(job_id) > 10 or int(job_id) > _MAX_ID:  # (before int(): a huge numeral is slow to read)
        raise NotFound("no such job in this project")
    with request.app.state.db.read() as conn:
        return JSON(get_job(conn, key.project_id, int(job_id)))
