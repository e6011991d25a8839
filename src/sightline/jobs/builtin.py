"""The runner's own kinds of job: keeping the queue itself small."""

from __future__ import annotations

import time

from ..store.engine.writer import WriteOp
from ..store.jobs import Job, PruneFinished
from .handlers import Handler

__all__ = ["PRUNE_KIND", "prune_finished"]

PRUNE_KIND = "jobs.prune"


def prune_finished(keep_days: float) -> Handler:
    """The handler of the periodic job that deletes jobs ended more than ``keep_days`` days ago (the
    cache purge alone adds one a period)."""

    async def prune(job: Job) -> WriteOp | None:
        return PruneFinished(int((time.time() - keep_days * 86_400) * 1_000_000))

    return prune
