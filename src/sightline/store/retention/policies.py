"""Retention policies and erasure: what to remove, found a batch at a time.

A policy (per project, and per environment or for all of them) deletes or anonymises the generations
older than N days. Deleting walks the oldest rows first (the ``(project_id, ts_us)`` index) until none
is older than the cutoff. Anonymising keeps a cursor instead, since anonymised rows stay: every
generation older than ``done_until_us`` is done, and so is every one numbered up to ``done_seq`` by
the ingest sequence; a run takes the late arrivals first (numbered after ``done_seq`` with an older
time), then the rows from ``done_until_us`` up to the cutoff, and moves the cursor with each batch.

Erasure takes every generation (and run) of one end user (``userId``) in a project.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, delete, func, or_, select, update

from ...errors import InvalidInput, NotFound
from .. import tables as t
from ..access.audit import Actor, record_audit
from ..engine.dialect import upsert, upsert_add
from ..generations.records import iso

__all__ = [
    "ACTIONS",
    "AdvanceAnonymised",
    "Policy",
    "RecordRetentionRun",
    "RemovePolicy",
    "SetPolicy",
    "anonymise_batch",
    "count_expired",
    "expired_batch",
    "get_policies",
    "user_feedback",
    "user_generations",
    "DeleteUserFeedback",
    "ERASED_USER",
    "ForgetUserTotals",
    "max_seq",
    "check_policy",
]

ACTIONS = ("delete", "anonymise")
DAY_US = 86_400_000_000
p, g = t.retention_policies, t.generations


@dataclass(frozen=True, slots=True)
class Policy:
    project_id: int
    environment: str  # "" for every environment
    action: str
    after_days: int
    done_until_us: int
    done_seq: int
    last_run_us: int | None
    last_result: dict[str, Any] | None
    updated_us: int

    def cutoff(self, now_us: int) -> int:
        return now_us - self.after_days * DAY_US

    def wire(self) -> dict[str, Any]:
        return {
            "environment": self.environment or None,
            "action": self.action,
            "afterDays": self.after_days,
            "lastRunAt": iso(self.last_run_us) if self.last_run_us else None,
            "lastResult": self.last_result,
            "updatedAt": iso(self.updated_us),
        }


def _policy(row: Any) -> Policy:
    return Policy(
        row.project_id,
        row.environment,
        row.action,
        row.after_days,
        row.done_until_us,
        row.done_seq,
        row.last_run_us,
        row.last_result,
        row.updated_us,
    )


def check_policy(action: Any, after_days: Any) -> tuple[str, int]:
    if action not in ACTIONS:
        raise InvalidInput("action: delete or anonymise", field="action")
    if isinstance(after_days, bool) or not isinstance(after_days, int) or not 1 <= after_days <= 36_500:
        raise InvalidInput("afterDays: a whole number of days from 1 to 36500", field="afterDays")
    return action, after_days


@dataclass(slots=True)
class SetPolicy:
    """Set the policy of a project (and environment, "" for all); answers it."""

    project_id: int
    environment: str
    action: str
    after_days: int
    actor: Actor
    now_us: int
    size: int = 1

    def apply(self, conn: Connection) -> Policy:
        row = {
            "project_id": self.project_id,
            "environment": self.environment,
            "action": self.action,
            "after_days": self.after_days,
            "done_until_us": 0,
            "done_seq": 0,
            "last_run_us": None,
            "last_result": None,
            "updated_us": self.now_us,
            "updated_by": self.actor.label,
        }
        upsert(conn, p, [row], update=["action", "after_days", "updated_us", "updated_by"])
        record_audit(
            conn,
            self.actor,
            "retention.set",
            f"{self.environment or 'all environments'}: {self.action} after {self.after_days} days",
            project_id=self.project_id,
            now_us=self.now_us,
        )
        return get_policies(conn, self.project_id, self.environment)[0]


@dataclass(slots=True)
class RemovePolicy:
    project_id: int
    environment: str
    actor: Actor
    now_us: int
    size: int = 1

    def apply(self, conn: Connection) -> None:
        done = conn.execute(
            delete(p).where(p.c.project_id == self.project_id, p.c.environment == self.environment)
        )
        if not done.rowcount:
            raise NotFound("no such retention policy")
        record_audit(
            conn,
            self.actor,
            "retention.remove",
            self.environment or "all environments",
            project_id=self.project_id,
            now_us=self.now_us,
        )


def get_policies(
    conn: Connection, project_id: int | None = None, environment: str | None = None
) -> list[Policy]:
    """The policies of a project (of every project when None), or its one for ``environment``."""
    q = select(p)
    if project_id is not None:
        q = q.where(p.c.project_id == project_id)
    if environment is not None:
        q = q.where(p.c.environment == environment)
    return [_policy(r) for r in conn.execute(q.order_by(p.c.project_id, p.c.environment))]


def _scope(policy: Policy) -> list[Any]:
    conds = [g.c.project_id == policy.project_id]
    if policy.environment:
        conds.append(g.c.environment == policy.environment)
    return conds


def expired_batch(conn: Connection, policy: Policy, cutoff_us: int, limit: int) -> list[str]:
    """The oldest generations of the policy older than ``cutoff_us`` (at most ``limit``)."""
    q = select(g.c.id).where(*_scope(policy), g.c.ts_us < cutoff_us).order_by(g.c.ts_us).limit(limit)
    return list(conn.execute(q).scalars())


def count_expired(conn: Connection, policy: Policy, cutoff_us: int) -> int:
    """How many generations a run would take now (for ``--dry-run``; anonymising counts all of them,
    done or not)."""
    return int(conn.scalar(select(func.count()).where(*_scope(policy), g.c.ts_us < cutoff_us)) or 0)


def anonymise_batch(
    conn: Connection, policy: Policy, cutoff_us: int, limit: int, after: tuple[int, str] | None = None
) -> tuple[list[str], int | None, int | None]:
    """The next generations to anonymise, and where the policy's cursor moves after them: ``(ids,
    done_until_us, None)`` for rows of the time range, ``(ids, None, done_seq)`` for late arrivals
    (numbered after ``done_seq`` with a time already passed), taken first."""
    late = conn.execute(
        select(g.c.id, g.c.seq)
        .where(*_scope(policy), g.c.seq > policy.done_seq, g.c.ts_us < min(policy.done_until_us, cutoff_us))
        .order_by(g.c.seq)
        .limit(limit)
    ).all()
    if late:
        return [r.id for r in late], None, int(late[-1].seq)
    # Within a run, batches follow each other by (time, id) (``after``: the last one taken); between
    # runs the cursor keeps the time alone, so the rows of that one time are looked at again.
    start = (
        or_(g.c.ts_us > after[0], and_(g.c.ts_us == after[0], g.c.id > after[1]))
        if after is not None
        else g.c.ts_us >= policy.done_until_us
    )
    rows = conn.execute(
        select(g.c.id, g.c.ts_us)
        .where(*_scope(policy), start, g.c.ts_us < cutoff_us)
        .order_by(g.c.ts_us, g.c.id)
        .limit(limit)
    ).all()
    if not rows:
        return [], cutoff_us, None
    until = int(rows[-1].ts_us) if len(rows) >= limit else cutoff_us
    return [r.id for r in rows], until, None


def max_seq(conn: Connection) -> int:
    return int(conn.scalar(select(func.max(g.c.seq))) or 0)


@dataclass(slots=True)
class AdvanceAnonymised:
    """Apply an anonymising batch and move the policy's cursor with it."""

    policy_project_id: int
    environment: str
    write: Any
    done_until_us: int | None
    done_seq: int | None = None
    size: int = 1

    def apply(self, conn: Connection) -> Any:
        answer = self.write.apply(conn) if self.write is not None else None
        values: dict[str, Any] = {}
        if self.done_until_us is not None:
            values["done_until_us"] = self.done_until_us
        if self.done_seq is not None:
            values["done_seq"] = self.done_seq
        if values:
            conn.execute(
                update(p)
                .where(p.c.project_id == self.policy_project_id, p.c.environment == self.environment)
                .values(**values)
            )
        return answer


@dataclass(slots=True)
class RecordRetentionRun:
    """Note when a policy last ran and what it removed."""

    project_id: int
    environment: str
    now_us: int
    result: Mapping[str, Any]
    size: int = 1

    def apply(self, conn: Connection) -> None:
        conn.execute(
            update(p)
            .where(p.c.project_id == self.project_id, p.c.environment == self.environment)
            .values(last_run_us=self.now_us, last_result=dict(self.result))
        )


def user_generations(
    conn: Connection, project_id: int, user_id: str, limit: int, after: str | None = None
) -> list[str]:
    """Generations of one end user of a project (theirs or their runs'), by id, after ``after``."""
    q = select(g.c.id).where(g.c.project_id == project_id, g.c.user_id == user_id)
    if after is not None:
        q = q.where(g.c.id > after)
    return list(conn.execute(q.order_by(g.c.id).limit(limit)).scalars())


def user_feedback(conn: Connection, project_id: int, user_id: str) -> int:
    fb = t.feedback
    return int(
        conn.scalar(select(func.count()).where(fb.c.project_id == project_id, fb.c.user_id == user_id)) or 0
    )


@dataclass(slots=True)
class DeleteUserFeedback:
    """Delete the feedback an end user gave (on any generation) and its scores; answers how many."""

    project_id: int
    user_id: str
    size: int = 1

    def apply(self, conn: Connection) -> int:
        fb, sc, sl = t.feedback, t.scores, t.score_latest
        given = conn.execute(
            delete(fb).where(fb.c.project_id == self.project_id, fb.c.user_id == self.user_id)
        ).rowcount
        # The scores their feedback became (source human, their userId kept with the score).
        theirs = select(sc.c.id).where(
            sc.c.project_id == self.project_id,
            sc.c.source == "human",
            sc.c.body["userId"].as_string() == self.user_id,
        )
        ids = list(conn.execute(theirs).scalars())
        for i in range(0, len(ids), 500):
            conn.execute(
                delete(sl).where(sl.c.project_id == self.project_id, sl.c.score_id.in_(ids[i : i + 500]))
            )
            conn.execute(delete(sc).where(sc.c.id.in_(ids[i : i + 500])))
        return int(given or 0)


ERASED_USER = "[erased]"


@dataclass(slots=True)
class ForgetUserTotals:
    """Move an erased end user's daily totals (kept under their id for the top users) to one
    ``[erased]`` entry of the same day, so the id is gone and every total stays; and drop their rate
    limit counters. Answers how many days of totals were moved."""

    project_id: int
    user_id: str
    size: int = 1

    def apply(self, conn: Connection) -> int:
        r = t.rollup_daily_keys
        theirs = (r.c.project_id == self.project_id, r.c.kind == "user", r.c.key == self.user_id)
        rows = conn.execute(
            select(r.c.environment, r.c.day_us, r.c.requests, r.c.cost, r.c.tokens).where(*theirs)
        ).all()
        if rows:
            conn.execute(delete(r).where(*theirs))
            moved = [
                (
                    self.project_id,
                    row.environment,
                    row.day_us,
                    "user",
                    ERASED_USER,
                    row.requests,
                    row.cost,
                    row.tokens,
                )
                for row in rows
            ]
            upsert_add(
                conn,
                r,
                moved,
                ("requests", "cost", "tokens"),
                ("project_id", "environment", "day_us", "kind", "key", "requests", "cost", "tokens"),
            )
        u = t.limit_usage
        conn.execute(delete(u).where(u.c.name == f"rpm:u:{self.project_id}:{self.user_id[:200]}"))
        return len(rows)
