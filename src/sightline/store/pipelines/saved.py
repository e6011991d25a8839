"""Saved pipelines: a project's named expressions. The expression is checked before it is saved
(:mod:`sightline.pipelines.service`); here it is stored, one row per name (saving a name again replaces
its expression and keeps its id), with an audit row."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update

from .. import tables as t
from ..access.audit import Actor, record_audit

__all__ = ["SavePipeline", "SavedPipeline", "get_pipeline", "list_pipelines"]

p = t.pipelines


@dataclass(frozen=True, slots=True)
class SavedPipeline:
    id: int
    name: str
    expression: str
    args: list[str]
    description: str | None = None
    created_us: int = 0
    updated_us: int = 0
    updated_by: str | None = None

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "expression": self.expression,
            "args": self.args,
            "description": self.description,
            "createdAt": self.created_us,
            "updatedAt": self.updated_us,
            "updatedBy": self.updated_by,
        }


def _saved(row: Any) -> SavedPipeline:
    return SavedPipeline(
        row.id,
        row.name,
        row.expression,
        list(row.args),
        row.description,
        row.created_us,
        row.updated_us,
        row.updated_by,
    )


@dataclass(slots=True)
class SavePipeline:
    """Create pipeline ``name`` in ``project_id``, or replace its expression; answers the saved row."""

    project_id: int
    name: str
    expression: str
    args: list[str]
    description: str | None
    actor: Actor
    size: int = 1

    def apply(self, conn: Connection) -> SavedPipeline:
        now = time.time_ns() // 1000
        where = (p.c.project_id == self.project_id) & (p.c.name == self.name)
        values = {
            "expression": self.expression,
            "args": self.args,
            "description": self.description,
            "updated_us": now,
            "updated_by": self.actor.label,
        }
        found = conn.scalar(select(p.c.id).where(where))
        if found is None:
            conn.execute(
                insert(p).values(project_id=self.project_id, name=self.name, created_us=now, **values)
            )
        else:
            conn.execute(update(p).where(p.c.id == found).values(**values))
        row = conn.execute(select(p).where(where)).one()
        record_audit(
            conn,
            self.actor,
            "pipeline.save",
            self.name,
            project_id=self.project_id,
            details={"id": row.id, "created": found is None},
            now_us=now,
        )
        return _saved(row)


def get_pipeline(
    conn: Connection, project_id: int, *, pipeline_id: int | None = None, name: str | None = None
) -> SavedPipeline | None:
    """Pipeline ``pipeline_id`` or ``name`` of ``project_id`` (another project's is not found)."""
    query = select(p).where(p.c.project_id == project_id)
    if pipeline_id is not None:
        if not 0 < pipeline_id < 2**31:
            return None
        query = query.where(p.c.id == pipeline_id)
    elif name is not None:
        if not 0 < len(name) <= 200 or "\x00" in name:
            return None
        query = query.where(p.c.name == name)
    else:
        return None
    row = conn.execute(query).first()
    return _saved(row) if row is not None else None


def list_pipelines(conn: Connection, project_id: int) -> list[SavedPipeline]:
    return [_saved(r) for r in conn.execute(select(p).where(p.c.project_id == project_id).order_by(p.c.name))]
