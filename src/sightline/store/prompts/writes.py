"""Changing prompts, through the single writer: saving a new version, moving a label.

Each is a write operation (``engine/writer.py``) applied in the writer's transaction with its audit
row, so a version or a label move is in the audit log exactly when it happened.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from ...errors import Conflict, NotFound
from .. import tables as t
from ..access.audit import Actor, record_audit
from ..engine.dialect import insert_ignore, upsert
from .drafts import PromptDraft
from .managed import max_version

__all__ = ["MoveLabel", "SavePrompt", "Saved"]

_ATTEMPTS = 20


def _now_us() -> int:
    return time.time_ns() // 1000


def check_namespace(conn: Connection, name: str) -> None:
    """Prompts and functions share one namespace: a registered function's name is not a prompt's."""
    f = t.functions
    if conn.scalar(select(f.c.name).where(f.c.name == name)) is not None:
        raise Conflict(
            f"name: {name!r} is a registered function; prompts and functions share one namespace, "
            "choose another name",
            field="name",
        )


@dataclass(frozen=True, slots=True)
class Saved:
    name: str
    version: int
    template_version: str
    args: list[str]

    def wire(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "templateVersion": self.template_version,
            "args": self.args,
        }


@dataclass(frozen=True, slots=True)
class SavePrompt:
    """Save ``draft`` as the next version of its prompt in ``project_id`` (1 for a new name); answers
    :class:`Saved`. Its content also joins ``prompt_versions``, where the recorded templates are."""

    project_id: int
    draft: PromptDraft
    actor: Actor
    size: int = 1

    def apply(self, conn: Connection) -> Saved:
        d, now = self.draft, _now_us()
        check_namespace(conn, d.name)
        row = {
            "project_id": self.project_id,
            "name": d.name,
            "template_version": d.template_version,
            "body": d.body,
            "args": d.args,
            "model": d.model,
            "parameters": d.parameters,
            "description": d.description,
            "created_us": now,
            "created_by": self.actor.label,
        }
        number = max_version(conn, self.project_id, d.name) + 1
        for _ in range(_ATTEMPTS):
            # Several server processes on one PostgreSQL database may save the same name at once:
            # the number that another took first is skipped, not an error.
            inserted = insert_ignore(
                conn, t.managed_prompts, [{**row, "version": number}], returning="version"
            )
            if inserted is None or inserted:
                break
            number += 1
        else:
            raise Conflict(f"name: {d.name!r} is being saved by others right now; try again", field="name")
        insert_ignore(
            conn,
            t.prompt_versions,
            [
                {
                    "project_id": self.project_id,
                    "name": d.name,
                    "version": d.template_version,
                    "created_us": now,
                    "body": d.body,
                }
            ],
        )
        record_audit(
            conn,
            self.actor,
            "prompt.save",
            d.name,
            project_id=self.project_id,
            details={"version": number, "templateVersion": d.template_version},
            now_us=now,
        )
        return Saved(d.name, number, d.template_version, d.args)


@dataclass(frozen=True, slots=True)
class MoveLabel:
    """Point ``label`` of prompt ``name`` at ``version`` (a managed version); audited with the version
    it pointed at before. Answers that previous version (``None``: the label is new)."""

    project_id: int
    name: str
    label: str
    version: int
    actor: Actor
    size: int = 1

    def apply(self, conn: Connection) -> int | None:
        m, lb = t.managed_prompts, t.prompt_labels
        if "\x00" in self.name or len(self.name) > 200:  # PostgreSQL refuses a NUL in a parameter
            raise NotFound(f"name: no managed prompt named {self.name[:200]!r} in this project", field="name")
        exists = conn.scalar(
            select(m.c.version).where(
                m.c.project_id == self.project_id, m.c.name == self.name, m.c.version == self.version
            )
        )
        if exists is None:
            if max_version(conn, self.project_id, self.name) == 0:
                raise NotFound(f"name: no managed prompt named {self.name!r} in this project", field="name")
            raise NotFound(f"version: prompt {self.name!r} has no version {self.version}", field="version")
        before = conn.scalar(
            select(lb.c.version).where(
                lb.c.project_id == self.project_id, lb.c.name == self.name, lb.c.label == self.label
            )
        )
        now = _now_us()
        upsert(
            conn,
            lb,
            [
                {
                    "project_id": self.project_id,
                    "name": self.name,
                    "label": self.label,
                    "version": self.version,
                    "updated_us": now,
                    "updated_by": self.actor.label,
                }
            ],
            update=["version", "updated_us", "updated_by"],
        )
        record_audit(
            conn,
            self.actor,
            "prompt.label",
            self.name,
            project_id=self.project_id,
            details={"label": self.label, "from": before, "to": self.version},
            now_us=now,
        )
        return int(before) if before is not None else None
