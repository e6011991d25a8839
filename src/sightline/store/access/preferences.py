"""What a dashboard user keeps for themselves in one project: the columns of a list, say.

A preference is a name (``generations.columns``) and a small JSON value, one per user, project and
name; the latest write wins. The dashboard checks a value's shape; this module bounds its size, so
no user can fill the database through it.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from ...errors import InvalidInput
from .. import tables as t

__all__ = ["MAX_VALUE_BYTES", "get_preference", "set_preference"]

MAX_VALUE_BYTES = 8192
_MAX_NAME = 64

p = t.user_preferences


def get_preference(conn: Connection, user_id: int, project_id: int, name: str) -> Any:
    """The user's value of ``name`` in the project, or None when they never set it."""
    row = conn.execute(
        select(p.c.value).where(p.c.user_id == user_id, p.c.project_id == project_id, p.c.name == name)
    ).first()
    return None if row is None else row.value


def set_preference(conn: Connection, user_id: int, project_id: int, name: str, value: Any) -> None:
    """Keep ``value`` as the user's ``name`` in the project (replacing what was there).

    InvalidInput naming ``name`` for an empty or over-long name, or ``value`` when it is larger than
    :data:`MAX_VALUE_BYTES` as JSON.
    """
    if not name or len(name) > _MAX_NAME:
        raise InvalidInput(f"name: 1 to {_MAX_NAME} characters", field="name")
    if len(orjson.dumps(value)) > MAX_VALUE_BYTES:
        raise InvalidInput(f"value: at most {MAX_VALUE_BYTES} bytes as JSON", field="value")
    now = time.time_ns() // 1000
    where = (p.c.user_id == user_id, p.c.project_id == project_id, p.c.name == name)
    if conn.execute(update(p).where(*where).values(value=value, updated_us=now)).rowcount:
        return
    try:
        with conn.begin_nested():  # two first writes at once: the later one updates
            conn.execute(
                p.insert().values(
                    user_id=user_id, project_id=project_id, name=name, value=value, updated_us=now
                )
            )
    except IntegrityError:
        conn.execute(update(p).where(*where).values(value=value, updated_us=now))
