"""The job queue's operations: each a write operation for the single writer, and the reads.

A job's life (``tables/jobs.py``)::

    Enqueue ──> queued ──Claim──> running ──Complete──> succeeded
                  ^                  │
                  └──Fail (retry)────┤──Fail (last attempt)──> failed (its error kept)
                  └──Release─────────┘   (and a lease that ran out is claimed again)

Every change goes through the writer (``engine/writer.py``), so on SQLite the queue never adds a
second writer, and a job's result commits with its completion: :class:`Complete` applies the write
the job's handler asked for and marks the job done in one transaction, and neither happens if
another worker has taken the job over meanwhile (:class:`LeaseLost`).

Claims are one ``UPDATE … WHERE id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED) RETURNING``: on
PostgreSQL, workers of several processes claiming at once skip each other's rows instead of
waiting for them or taking them twice; on SQLite (where SQLAlchemy leaves ``FOR UPDATE`` out) the
statement takes the database's one write lock before it reads, so claims are serialised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, and_, case, delete, insert, select, update

from ...errors import Conflict, NotFound
from .. import tables as t
from ..engine.dialect import insert_ignore
from ..engine.writer import WriteOp
from ..generations.records import iso

__all__ = [
    "Claim",
    "Complete",
    "Enqueue",
    "Fail",
    "Job",
    "LeaseLost",
    "Outcome",
    "Progress",
    "PruneFinished",
    "PruneKind",
    "Release",
    "Renew",
    "get_job",
    "job_wire",
    "others_running",
]

_CLAIMED = ("id", "kind", "key", "project_id", "payload", "attempts", "max_attempts", "worker", "result")
_ERROR_MAX = 4000  # characters of a failed attempt's error that are kept

j = t.jobs


class LeaseLost(Conflict):
    """The job is no longer this worker's: its lease ran out and another worker claimed it (or it
    ended). What the worker meant to write with its completion was not written."""


@dataclass(frozen=True, slots=True)
class Job:
    """A claimed job, as its handler sees it."""

    id: int
    kind: str
    project_id: int | None
    payload: dict[str, Any]
    attempts: int  # this attempt's number, from 1
    max_attempts: int
    worker: str
    key: str | None = None
    # What an earlier attempt recorded of its progress (``Progress``): where to resume.
    result: dict[str, Any] | None = None


def _job(row: Any) -> Job:
    return Job(
        id=row.id,
        kind=row.kind,
        project_id=row.project_id,
        payload=dict(row.payload or {}),
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        worker=row.worker,
        key=row.key,
        result=dict(row.result) if isinstance(row.result, dict) else None,
    )


@dataclass(slots=True)
class Enqueue:
    """Add a job; answers its id. With a ``key`` that some job has already, nothing is added and that
    job's id is answered: periodic jobs are keyed by their time bucket, so every process may enqueue
    them and one job results."""

    kind: str
    payload: dict[str, Any]
    now_us: int
    max_attempts: int
    project_id: int | None = None
    key: str | None = None
    due_us: int | None = None  # not before this time (default: now)
    size: int = 1

    def apply(self, conn: Connection) -> int:
        row = {
            "project_id": self.project_id,
            "kind": self.kind,
            "key": self.key,
            "state": "queued",
            "payload": self.payload,
            "attempts": 0,
            "max_attempts": self.max_attempts,
            "due_us": self.now_us if self.due_us is None else self.due_us,
            "created_us": self.now_us,
        }
        if self.key is None:
            return int(conn.execute(insert(j).values(row).returning(j.c.id)).scalar_one())
        # The insert comes first: on SQLite it takes the write lock before anything is read, so two
        # processes enqueueing the same key wait for each other instead of one failing.
        insert_ignore(conn, j, [row])
        return int(conn.execute(select(j.c.id).where(j.c.key == self.key)).scalar_one())


@dataclass(slots=True)
class Claim:
    """Take up to ``limit`` jobs of ``kinds`` whose time has come (queued and due, or running under a
    lease that ran out) for ``worker``, leased until ``lease_until_us``; answers them, soonest first.

    A job whose lease ran out on its last attempt (its worker died every time) is failed here
    rather than run again."""

    worker: str
    kinds: tuple[str, ...]
    now_us: int
    lease_until_us: int
    limit: int
    size: int = 1

    def apply(self, conn: Connection) -> list[Job]:
        if not self.kinds or self.limit < 1:
            return []
        mine = j.c.kind.in_(self.kinds)
        conn.execute(
            update(j)
            .where(j.c.state == "running", j.c.due_us <= self.now_us, j.c.attempts >= j.c.max_attempts, mine)
            .values(
                state="failed",
                finished_us=self.now_us,
                error="the worker running its last attempt stopped (its lease ran out)",
            )
        )
        due = (
            select(j.c.id)
            .where(j.c.state.in_(("queued", "running")), j.c.due_us <= self.now_us, mine)
            .order_by(j.c.due_us, j.c.id)
            .limit(self.limit)
            .with_for_update(skip_locked=True)
        )
        claimed = conn.execute(
            update(j)
            .where(j.c.id.in_(due.scalar_subquery()))
            .values(
                state="running",
                attempts=j.c.attempts + 1,
                worker=self.worker,
                due_us=self.lease_until_us,
                started_us=self.now_us,
            )
            .returning(*(j.c[name] for name in _CLAIMED))
        ).all()
        return [_job(row) for row in sorted(claimed, key=lambda row: row.id)]


def _held(job_id: int, worker: str) -> Any:
    """The condition that ``worker`` still holds ``job_id``'s lease."""
    return and_(j.c.id == job_id, j.c.worker == worker, j.c.state == "running")


def _result(value: Any) -> dict[str, Any] | None:
    """A handler's answer as the job's result: a JSON object as it is, anything else as
    ``{"value": ...}`` (its text, if JSON cannot hold it). Always an object: SQLite would keep a bare
    number in a JSON column as a number, which does not read back as JSON."""
    if value is None:
        return None
    try:
        orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        value = str(value)
    return value if isinstance(value, dict) else {"value": value}


@dataclass(slots=True)
class Complete:
    """Apply the write a job's handler asked for (if any) and mark the job succeeded with that write's
    answer as its result, in one transaction; raises :class:`LeaseLost` (and writes nothing) when
    ``worker`` no longer holds the job."""

    job_id: int
    worker: str
    now_us: int
    write: WriteOp | None = None
    size: int = 1

    def apply(self, conn: Connection) -> Any:
        result = self.write.apply(conn) if self.write is not None else None
        done = conn.execute(
            update(j)
            .where(_held(self.job_id, self.worker))
            .values(state="succeeded", result=_result(result), finished_us=self.now_us, error=None)
        )
        if not done.rowcount:
            raise LeaseLost(f"job {self.job_id} is no longer held by this worker")  # rolls the write back
        return result


@dataclass(slots=True)
class Progress:
    """Record how far a running job has got (its ``result`` so far, e.g. ``{"done", "total",
    "errors", "after"}``) together with the write of the work done up to there, in one transaction:
    a job that is stopped and claimed again resumes from there, and no part of its work is written
    twice. Raises :class:`LeaseLost` (and writes nothing) when ``worker`` no longer holds the job."""

    job_id: int
    worker: str
    result: dict[str, Any]
    write: WriteOp | None = None
    size: int = 1

    def apply(self, conn: Connection) -> Any:
        answer = self.write.apply(conn) if self.write is not None else None
        done = conn.execute(
            update(j).where(_held(self.job_id, self.worker)).values(result=_result(self.result))
        )
        if not done.rowcount:
            raise LeaseLost(f"job {self.job_id} is no longer held by this worker")
        return answer


@dataclass(slots=True)
class Outcome:
    """What a handler answers to end its job with ``result`` as the job's result (and no other write)."""

    result: dict[str, Any]
    size: int = 1

    def apply(self, conn: Connection) -> dict[str, Any]:
        return self.result


@dataclass(slots=True)
class PruneKind:
    """Delete the succeeded jobs of ``kind`` that ended before ``before_us`` (a frequent periodic kind
    keeps its own history short); answers how many."""

    kind: str
    before_us: int
    size: int = 1

    def apply(self, conn: Connection) -> int:
        old = and_(j.c.kind == self.kind, j.c.state == "succeeded", j.c.finished_us < self.before_us)
        return int(conn.execute(delete(j).where(old)).rowcount or 0)


def others_running(conn: Connection, kind: str, job_id: int, now_us: int) -> bool:
    """Whether an older job of ``kind`` is running under a live lease (a periodic job that overran
    its period: the newer one may leave the work to it)."""
    q = select(j.c.id).where(j.c.kind == kind, j.c.state == "running", j.c.id < job_id, j.c.due_us > now_us)
    return conn.execute(q.limit(1)).first() is not None


@dataclass(slots=True)
class Fail:
    """Record a failed attempt: queued again from ``retry_at_us``, or, when that is ``None`` (the last
    attempt), failed for good. The error is kept either way. A no-op when ``worker`` no longer holds
    the job (answers whether it did)."""

    job_id: int
    worker: str
    now_us: int
    error: str
    retry_at_us: int | None
    size: int = 1

    def apply(self, conn: Connection) -> bool:
        error = self.error[:_ERROR_MAX]
        if self.retry_at_us is None:
            values: dict[str, Any] = {"state": "failed", "finished_us": self.now_us, "error": error}
        else:
            values = {"state": "queued", "due_us": self.retry_at_us, "error": error}
        return bool(conn.execute(update(j).where(_held(self.job_id, self.worker)).values(**values)).rowcount)


@dataclass(slots=True)
class Renew:
    """Extend ``worker``'s lease on a job it is still running; answers whether it held it."""

    job_id: int
    worker: str
    lease_until_us: int
    size: int = 1

    def apply(self, conn: Connection) -> bool:
        held = _held(self.job_id, self.worker)
        return bool(conn.execute(update(j).where(held).values(due_us=self.lease_until_us)).rowcount)


@dataclass(slots=True)
class Release:
    """Give a job back unfinished (its worker is stopping): queued again at once, and the attempt it
    was on does not count."""

    job_id: int
    worker: str
    now_us: int
    size: int = 1

    def apply(self, conn: Connection) -> bool:
        back = {
            "state": "queued",
            "due_us": self.now_us,
            "attempts": case((j.c.attempts > 0, j.c.attempts - 1), else_=0),
        }
        return bool(conn.execute(update(j).where(_held(self.job_id, self.worker)).values(**back)).rowcount)


@dataclass(slots=True)
class PruneFinished:
    """Delete the jobs that ended (succeeded or failed) before ``before_us``; answers how many."""

    before_us: int
    size: int = 1

    def apply(self, conn: Connection) -> int:
        ended = j.c.state.in_(("succeeded", "failed"))
        return int(conn.execute(delete(j).where(ended, j.c.finished_us < self.before_us)).rowcount or 0)


def job_wire(row: Any) -> dict[str, Any]:
    """A job as the API shows it (camelCase, times as ISO 8601); a job that counts its progress
    (``Progress``) also shows ``done``, ``total`` and ``errors`` at the top."""

    def at(us: int | None) -> str | None:
        return iso(us) if us is not None else None

    progress = row.result if isinstance(row.result, dict) else {}
    return {
        "id": row.id,
        "kind": row.kind,
        "status": row.state,
        "done": progress.get("done"),
        "total": progress.get("total"),
        "errors": progress.get("errors"),
        "state": row.state,
        "attempts": row.attempts,
        "maxAttempts": row.max_attempts,
        "payload": row.payload,
        "result": row.result,
        "error": row.error,
        "createdAt": at(row.created_us),
        "startedAt": at(row.started_us),
        "finishedAt": at(row.finished_us),
        # when a queued job may run next; for a running one, when its lease ends
        "dueAt": at(row.due_us) if row.state in ("queued", "running") else None,
    }


def get_job(conn: Connection, project_id: int, job_id: int) -> dict[str, Any]:
    """One job of ``project_id``, as the API shows it; :class:`NotFound` for any other project's job
    (or one of the installation's own) as for one that does not exist."""
    row = conn.execute(select(j).where(j.c.id == job_id, j.c.project_id == project_id)).first()
    if row is None:
        raise NotFound(f"no job {job_id} in this project")
    return job_wire(row)
