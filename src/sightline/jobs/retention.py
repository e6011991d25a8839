"""Retention and erasure as work for the job runner (and the CLI): policies applied in bounded batches.

``retention.apply`` runs every ``retention_seconds`` (default hourly) in ``sightline serve`` (or a
worker): each policy deletes or anonymises its project's generations older than its days, 500 at a
time, each batch one short transaction of the writer (ingest goes on between them). A run that is
stopped leaves everything consistent and the next run goes on from there: deleted rows are gone, and
anonymising moves its cursor with each batch. ``sightline retention run`` does the same on demand
(``--dry-run`` counts). :func:`erase_user` removes (or anonymises) everything of one end user.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ..store import Database
from ..store.access.audit import Actor, RecordAudit
from ..store.jobs import Job, Outcome
from ..store.retention import (
    AdvanceAnonymised,
    AnonymiseGenerations,
    DeleteGenerations,
    DeleteRuns,
    DeleteUserFeedback,
    ForgetUserTotals,
    Policy,
    PurgeCache,
    RecordRetentionRun,
    anonymise_batch,
    count_expired,
    expired_batch,
    get_policies,
    max_seq,
    user_generations,
)
from .handlers import Handler

__all__ = ["BATCH", "RETENTION_KIND", "apply_policy", "erase_user", "retention_handler"]

RETENTION_KIND = "retention.apply"
BATCH = 500  # generations per write: a short transaction whatever the policy's size
_PACE = 2.0  # pause after each batch, in multiples of its write time (see _paced)
T = TypeVar("T")
Progress = Callable[[int], None]


def _count_expired(conn: Any, policy: Policy, cutoff: int) -> int:
    return count_expired(conn, policy, cutoff)


async def _paced(db: Database, op: Any) -> Any:
    """Write one batch, then pause for twice as long as it took: the database's one write lock is
    ingest's at least two thirds of the time while a policy or an erasure goes through a large backlog
    (unpaced, deleting a million expired rows left ingest a quarter of its rate)."""
    started = time.monotonic()
    result = await db.writer.write(op)
    await asyncio.sleep((time.monotonic() - started) * _PACE)
    return result


def _add(total: dict[str, int], counts: dict[str, int]) -> None:
    for key, value in counts.items():
        total[key] = total.get(key, 0) + value


async def apply_policy(
    db: Database, policy: Policy, now_us: int, *, dry_run: bool = False, progress: Progress | None = None
) -> dict[str, Any]:
    """Apply one policy now; answers what it removed (or, with ``dry_run``, what it would take)."""
    cutoff = policy.cutoff(now_us)
    if dry_run:
        return {
            "action": policy.action,
            "generations": await db.read_in_thread(
                functools.partial(_count_expired, policy=policy, cutoff=cutoff)
            ),
        }
    total: dict[str, int] = {"generations": 0}
    if policy.action == "delete":

        def expired(c: Any) -> list[str]:
            return expired_batch(c, policy, cutoff, BATCH)

        while ids := await db.read_in_thread(expired):
            _add(total, await _paced(db, DeleteGenerations(policy.project_id, ids)))
            if progress:
                progress(len(ids))
        total["runs"] = await db.writer.write(
            DeleteRuns(policy.project_id, before_us=cutoff, environment=policy.environment or None)
        )
        total["cacheEntries"] = await db.writer.write(PurgeCache(policy.project_id, cutoff))
    else:
        seq = await db.read_in_thread(max_seq)
        after: tuple[int, str] | None = None  # the last (time, id) taken by this run
        while True:

            def batch(c: Any, pol: Policy = policy, at: tuple[int, str] | None = after) -> Any:
                return anonymise_batch(c, pol, cutoff, BATCH, at)

            ids, until, late_seq = await db.read_in_thread(batch)
            if not ids:
                # Everything numbered up to where this run began, and older than the cutoff, is done.
                await db.writer.write(
                    AdvanceAnonymised(policy.project_id, policy.environment, None, cutoff, seq)
                )
                break
            write = AnonymiseGenerations(policy.project_id, ids)
            op = AdvanceAnonymised(policy.project_id, policy.environment, write, until, late_seq)
            _add(total, await _paced(db, op))
            if until is not None:
                policy = dataclasses.replace(policy, done_until_us=until)
                after = (until, ids[-1])
            if late_seq is not None:
                policy = dataclasses.replace(policy, done_seq=late_seq)
            if progress:
                progress(len(ids))
    result = {"action": policy.action, "cutoff": cutoff, **total}
    await db.writer.write(RecordRetentionRun(policy.project_id, policy.environment, now_us, result))
    return result


def retention_handler(db: Database, clock: Callable[[], float] = time.time) -> Handler:
    """The periodic job applying every project's policies."""

    async def apply(job: Job) -> Any:
        now_us = int(clock() * 1_000_000)
        done = []
        for policy in await db.read_in_thread(get_policies):
            result = await apply_policy(db, policy, now_us)
            done.append({"projectId": policy.project_id, "environment": policy.environment or None, **result})
        return Outcome({"policies": done})

    return apply


def user_reference(project_id: int, user_id: str) -> str:
    """How the audit log names an erased user: a digest, not the id itself (which was personal data)."""
    return "user#" + hashlib.sha256(f"{project_id}:{user_id}".encode()).hexdigest()[:16]


async def erase_user(
    db: Database,
    project_id: int,
    user_id: str,
    actor: Actor,
    *,
    anonymise: bool = False,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Delete (or anonymise) every generation, run and feedback of one end user of a project; an audit
    entry records the erasure and its counts, never the content or the id itself."""
    total: dict[str, int] = {"generations": 0}
    after: str | None = None

    def theirs(c: Any) -> list[str]:
        return user_generations(c, project_id, user_id, BATCH, after)

    while ids := await db.read_in_thread(theirs):
        if anonymise:
            _add(total, await _paced(db, AnonymiseGenerations(project_id, ids)))
            after = ids[-1]  # anonymised rows stay: go on after them
        else:
            _add(total, await _paced(db, DeleteGenerations(project_id, ids, with_datasets=True)))
        if progress:
            progress(len(ids))
    if not anonymise:
        total["runs"] = await db.writer.write(DeleteRuns(project_id, user_id=user_id))
        total["feedbackGiven"] = await db.writer.write(DeleteUserFeedback(project_id, user_id))
        await db.writer.write(ForgetUserTotals(project_id, user_id))
    await db.writer.write(
        RecordAudit(
            actor,
            "user.anonymise" if anonymise else "user.erase",
            user_reference(project_id, user_id),
            project_id=project_id,
            details=dict(total),
        )
    )
    return total
