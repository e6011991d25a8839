"""Scores: ``POST /api/scores`` (one judgement of a generation or a run) and their history.

The same scores come in ``/api/ingest`` batches as ``{"type": "score", "body": {...}}``, from the
evaluators (``sightline.evals``) and from human feedback (as ``feedback.rating``, ``feedback.score``
and ``feedback.thumbs``); ``GET /api/generations/{id}`` shows the latest of each name.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import ValidationError

from ...errors import InvalidInput
from ...schema import Score
from ...store.evals import RecordScores, score_history, score_row
from ..auth import ApiKeyDep
from ..body import read_json
from ..errors import validation_message
from ..responses import JSON

router = APIRouter(tags=["scores"])


@router.post("/api/scores", status_code=201, summary="Score a generation or a run")
async def create(request: Request, key: ApiKeyDep) -> JSON:
    """Body: ``generationId`` or ``runId``, ``name``, ``value`` and/or ``label``, ``comment``,
    ``source`` (human, rule, llm, api; default api). 201 ``{"id", "name", "stored": true}``; 202 when
    its generation or run has not arrived yet (the score counts once it does)."""
    body = await read_json(request)
    try:
        score = Score.model_validate(body)
    except ValidationError as exc:
        message, field = validation_message(exc)
        raise InvalidInput(message, field=field) from None
    (found,) = await request.app.state.db.writer.write(RecordScores([score_row(score, key.scope)]))
    target = {"generationId": score.generation_id} if score.generation_id else {"runId": score.run_id}
    return JSON({**target, "name": score.name, "targetFound": found}, status_code=201 if found else 202)


@router.get("/api/scores", summary="Every score of one generation or run, oldest first")
def history(
    request: Request, key: ApiKeyDep, generationId: str | None = None, runId: str | None = None
) -> JSON:  # noqa: N803
    if (generationId is None) == (runId is None):
        raise InvalidInput("give exactly one of generationId and runId", field="generationId")
    with request.app.state.db.read() as conn:
        data = score_history(conn, key.project_id, generation_id=generationId, run_id=runId)
    return JSON({"data": data})
