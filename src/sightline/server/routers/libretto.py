"""What libretto-openai 1.1.x posts, received under ``/compat/libretto`` (its ``LIBRETTO_API_PREFIX``).

* ``POST /compat/libretto/event``: one model call → a Generation (``200 {"id", "api_name"}``)
* ``POST /compat/libretto/feedback``: ``{"feedback_key", "rating" 0..1, "better_response"}`` → feedback on
  the generation whose event carried that key; feedback that arrives before its event (the client sends
  both as concurrent tasks) is kept and joined when the event comes
* ``POST /compat/libretto/v1/updateChain``: ``{"id", "result"}`` → the chain's (run's) result

No auth header: the Sightline API key travels in the body as ``apiKey`` (or the legacy ``projectKey``); a
wrong key is a 401 and nothing is stored. :mod:`sightline.compat.libretto_wire` translates; every write
goes through the one writer and the same ingest operations as ``/api/generations``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from fastapi import APIRouter, Request
from sqlalchemy import Connection, select, update
from starlette.routing import Route

from ...compat.libretto_wire import FEEDBACK_KEY, api_key_of, chain_result, event, feedback
from ...errors import InvalidInput
from ...gateway import KeyLookup
from ...schema import Feedback, Run
from ...store import tables as t
from ...store.access.projects import ApiKey
from ...store.generations.ingest import (
    AddFeedback,
    InsertGenerations,
    UpsertRun,
    UpsertRuns,
    prepare_generation,
)
from ...store.generations.records import Scope, feedback_row
from ..body import read_json
from ..responses import JSON

__all__ = ["router", "routes"]

router = APIRouter(prefix="/compat/libretto", tags=["compatibility"])


def _waiting(feedback_key: str) -> str:
    """The generation id feedback waits under until the event carrying its key comes (then moved)."""
    return f"libretto-feedback:{feedback_key}"[:200]


@dataclass(slots=True)
class RecordEvents:
    """Events' generations (and their chains, as runs), in one transaction. Feedback that came first,
    kept under an event's feedback key, is moved onto its generation before the insert, which then
    applies it as it does any feedback that arrived before its generation. Events queued together
    merge into one insert, as ``/api/generations`` posts do (answers: per event, whether it was new)."""

    scope: Scope
    insert: InsertGenerations
    waiting: list[tuple[str, str]]  # (where its feedback would wait, the generation id)
    chains: list[Run]
    size: int = 1

    def merge(self, other: object) -> RecordEvents | None:
        if not isinstance(other, RecordEvents) or other.scope != self.scope:
            return None
        insert = self.insert.merge(other.insert)
        if insert is None:
            return None
        return RecordEvents(
            self.scope,
            insert,
            self.waiting + other.waiting,
            self.chains + other.chains,
            self.size + other.size,
        )

    def apply(self, conn: Connection) -> list[bool]:
        UpsertRuns(self.scope, self.chains).apply(conn)
        if self.waiting:
            fb, pid = t.feedback, self.scope.project_id
            moves = dict(self.waiting)
            found = conn.scalars(
                select(fb.c.generation_id)
                .distinct()
                .where(fb.c.project_id == pid, fb.c.generation_id.in_(list(moves)))
            )
            for waiting in list(found):
                conn.execute(
                    update(fb)
                    .where(fb.c.project_id == pid, fb.c.generation_id == waiting)
                    .values(generation_id=moves[waiting])
                )
        return self.insert.apply(conn)


@dataclass(slots=True)
class RecordFeedback:
    """Feedback on the generation whose event carried ``feedback_key``; kept aside until that event comes."""

    scope: Scope
    feedback_key: str
    feedback: Feedback
    size: int = 1

    def apply(self, conn: Connection) -> bool:
        m = t.generation_metadata
        found = conn.scalar(
            select(m.c.generation_id)
            .where(
                m.c.project_id == self.scope.project_id,
                m.c.key == FEEDBACK_KEY,
                m.c.value == self.feedback_key,
            )
            .limit(1)
        )
        if found is not None:
            return AddFeedback(self.scope, found, self.feedback).apply(conn)
        conn.execute(
            t.feedback.insert(),
            [feedback_row(self.feedback, _waiting(self.feedback_key), self.scope.project_id)],
        )
        return False


async def _key(request: Request, body: object) -> ApiKey:
    keys: KeyLookup = request.app.state.keys
    caller = await keys.authenticate(f"Bearer {api_key_of(body)}")
    return caller.key


async def record_event(request: Request) -> JSON:
    """Body: libretto-openai's event → ``200 {"id", "api_name"}`` once committed.

    A plain Starlette route (no FastAPI dependency resolution: ~35% of a request's CPU here), as
    ``POST /api/generations`` is: libretto-openai sends one event per model call."""
    received = time.time()
    body = await read_json(request)
    key = await _key(request, body)
    found = event(body, received=received)
    gen = found.generation
    if len(gen.metadata) > request.app.state.settings.max_metadata_keys:
        raise InvalidInput("metadata: too many keys", field="metadata")
    chains = [Run(id=gen.run_id, started_at=gen.timestamp, status="ok")] if gen.run_id else []
    waiting = [(_waiting(found.feedback_key), gen.id)] if found.feedback_key else []
    insert = InsertGenerations(key.scope, [prepare_generation(gen, key.scope)])
    await request.app.state.db.writer.write(RecordEvents(key.scope, insert, waiting, chains))
    request.app.state.metrics.ingest_items.labels("generation", "accepted").inc()
    return JSON({"id": gen.id, "api_name": found.api_name})


routes = [Route("/compat/libretto/event", record_event, methods=["POST"])]


@router.post("/feedback", summary="Feedback as libretto-openai sends it (may come before its event)")
async def record_feedback(request: Request) -> JSON:
    """Body: ``{"feedback_key", "apiKey", "rating": 0..1 | null, "better_response": text | null}``."""
    body = await read_json(request)
    key = await _key(request, body)
    feedback_key, fb = feedback(body)
    joined = await request.app.state.db.writer.write(RecordFeedback(key.scope, feedback_key, fb))
    return JSON({"feedback_key": feedback_key, "joined": bool(joined)})


@router.post("/v1/updateChain", summary="A chain's result as libretto-openai sends it")
async def update_chain(request: Request) -> JSON:
    """Body: ``{"id", "apiKey", "result"}`` → the run (chain) ``id`` gets ``result`` as its output."""
    body = await read_json(request)
    key = await _key(request, body)
    run = chain_result(body)
    await request.app.state.db.writer.write(UpsertRun(key.scope, run))
    return JSON({"id": run.id})
