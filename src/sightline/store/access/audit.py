"""The audit log: who (a dashboard user or an API key) did what, to which record, when, from where.

Actions that change who sees or runs what (moving a prompt's label, and later: users, keys,
providers, function sync) write one row here, in the same transaction as the change itself: an
action is in the log if and only if it happened. ``details`` says what changed (a label's old and
new version, say) and never holds a secret, a prompt's text or a request body.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, insert, select

from .. import tables as t

__all__ = ["Actor", "AuditEntry", "RecordAudit", "audit_entries", "record_audit"]

ACTOR_KINDS = ("user", "key", "system")
_CLIENT_MAX = 64
_TARGET_MAX = 200


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: ``kind`` "user" (a dashboard session: its user id and username), "key" (an API key:
    its id and prefix, never the key), or "system" (the server itself, a CLI command); and the
    client address the request came from, when there was one."""

    kind: str
    id: int | None = None
    name: str | None = None
    client: str | None = None

    @property
    def label(self) -> str:
        """How the actor reads in a list: ``user:alice``, ``key:sl_ab12``."""
        return f"{self.kind}:{self.name or self.id or '?'}"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    ts_us: int
    project_id: int | None
    actor_kind: str
    actor_id: int | None
    actor_name: str | None
    action: str
    target: str
    details: dict[str, Any]
    client: str | None


def record_audit(
    conn: Connection,
    actor: Actor,
    action: str,
    target: str,
    *,
    project_id: int | None,
    details: dict[str, Any] | None = None,
    now_us: int | None = None,
) -> None:
    """Write one audit row on ``conn`` (inside the transaction of the change it records)."""
    if actor.kind not in ACTOR_KINDS:
        raise ValueError(f"actor kind must be one of {ACTOR_KINDS}, got {actor.kind!r}")
    conn.execute(
        insert(t.audit_log).values(
            ts_us=time.time_ns() // 1000 if now_us is None else now_us,
            project_id=project_id,
            actor_kind=actor.kind,
            actor_id=actor.id,
            actor_name=(actor.name or None) and actor.name[:200],
            action=action,
            target=target[:_TARGET_MAX],
            details=details or {},
            client=(actor.client or None) and actor.client[:_CLIENT_MAX],
        )
    )


@dataclass(slots=True)
class RecordAudit:
    """A write operation for the single writer: one audit row on its own (an action whose change was
    written elsewhere, or none: a refused login, an export)."""

    actor: Actor
    action: str
    target: str
    project_id: int | None
    details: dict[str, Any] = field(default_factory=dict)
    size: int = 1

    def apply(self, conn: Connection) -> None:
        record_audit(
            conn, self.actor, self.action, self.target, project_id=self.project_id, details=self.details
        )


def audit_entries(
    conn: Connection,
    project_id: int | None,
    *,
    action: str | None = None,
    target: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Audit rows of ``project_id`` (``None``: the install-wide ones), newest first."""
    a = t.audit_log
    q = select(a).where(a.c.project_id.is_(None) if project_id is None else a.c.project_id == project_id)
    if action is not None:
        q = q.where(a.c.action == action)
    if target is not None:
        q = q.where(a.c.target == target)
    if before_id is not None:
        q = q.where(a.c.id < before_id)
    q = q.order_by(a.c.id.desc()).limit(max(1, min(limit, 1000)))
    return [
        AuditEntry(
            r.id,
            r.ts_us,
            r.project_id,
            r.actor_kind,
            r.actor_id,
            r.actor_name,
            r.action,
            r.target,
            dict(r.details or {}),
            r.client,
        )
        for r in conn.execute(q)
    ]
