"""The function registry: what an admin's sync found in the built-ins and the functions folder.

Install-wide (functions are files on the server). A sync replaces the registry with what exists now,
in one transaction, and says how many names it added and deleted; its audit row keeps the errors
found (files that failed to import, functions refused), which the Functions page shows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from .. import tables as t
from ..access.audit import Actor, record_audit

__all__ = ["SyncFunctions", "Synced", "list_functions", "registered_function"]

f = t.functions


@dataclass(frozen=True, slots=True)
class Synced:
    added: int
    deleted: int
    functions: list[str]
    errors: list[dict[str, str]]

    def wire(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "deleted": self.deleted,
            "functions": self.functions,
            "errors": self.errors,
        }


@dataclass(slots=True)
class SyncFunctions:
    """Make the registry hold exactly ``found`` (name → ``{"source", "signature", "doc"}``).

    A function may not take a prompt's name (prompts and functions share one namespace): such a
    function is left out and listed among the errors."""

    found: dict[str, dict[str, Any]]
    errors: list[dict[str, str]]
    actor: Actor
    size: int = 1
    _now: int = field(default_factory=lambda: time.time_ns() // 1000)

    def apply(self, conn: Connection) -> Synced:
        errors = list(self.errors)
        taken = set(conn.scalars(select(t.managed_prompts.c.name).distinct())) | set(
            conn.scalars(select(t.prompt_versions.c.name).distinct())
        )
        wanted = {}
        for name, info in self.found.items():
            if name in taken:
                errors.append(
                    {
                        "file": info["source"],
                        "message": f"{name}: a prompt has this name "
                        "(prompts and functions share one namespace)",
                    }
                )
            else:
                wanted[name] = info
        current = {row.name: row for row in conn.execute(select(f))}
        gone = sorted(set(current) - set(wanted))
        new = sorted(set(wanted) - set(current))
        if gone:
            conn.execute(delete(f).where(f.c.name.in_(gone)))
        for name in new:
            info = wanted[name]
            conn.execute(
                insert(f).values(
                    name=name,
                    source=info["source"],
                    signature=info["signature"],
                    doc=info.get("doc"),
                    registered_us=self._now,
                )
            )
        for name in set(wanted) & set(current):
            info, row = wanted[name], current[name]
            if (row.source, row.signature, row.doc) != (info["source"], info["signature"], info.get("doc")):
                conn.execute(
                    update(f)
                    .where(f.c.name == name)
                    .values(source=info["source"], signature=info["signature"], doc=info.get("doc"))
                )
        synced = Synced(len(new), len(gone), sorted(wanted), errors)
        record_audit(
            conn,
            self.actor,
            "functions.sync",
            "functions",
            project_id=None,
            details={"added": new, "deleted": gone, "errors": errors[:100]},
            now_us=self._now,
        )
        return synced


def list_functions(conn: Connection) -> list[dict[str, Any]]:
    """Every registered function: name, source, signature, doc, when registered."""
    return [
        {
            "name": row.name,
            "source": row.source,
            "signature": row.signature,
            "doc": row.doc,
            "registeredAt": row.registered_us,
        }
        for row in conn.execute(select(f).order_by(f.c.name))
    ]


def registered_function(conn: Connection, name: str) -> dict[str, Any] | None:
    row = conn.execute(select(f).where(f.c.name == name)).first()
    if row is None:
        return None
    return {"name": row.name, "source": row.source, "signature": row.signature, "doc": row.doc}


def last_sync(conn: Connection) -> dict[str, Any] | None:
    """The latest sync's audit details (``added``, ``deleted``, ``errors``) and when, or None."""
    a = t.audit_log
    row = conn.execute(
        select(a.c.ts_us, a.c.actor_name, a.c.details)
        .where(a.c.action == "functions.sync")
        .order_by(a.c.ts_us.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return {"at": row.ts_us, "by": row.actor_name, **(row.details or {})}
