"""What a list of generations may show besides ``queries.list_rows``: the columns a user can choose.

* :func:`column_values`: for one page of ids, the start of each input and the chosen metadata keys,
  read in two queries whatever the page's size. Inputs are cut in the database (a 1 MB prompt costs
  a page 2 kB), so a page's memory stays bounded.
* :func:`metadata_keys` and :func:`score_names`: the keys and score names a project has, for the
  column chooser, each found by a loose index scan (one index seek per name, not a scan of every
  row), at most ``limit`` of them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, String, func, select

from ... import tables as t

__all__ = ["PREVIEW_CHARS", "column_values", "metadata_keys", "score_names"]

PREVIEW_CHARS = 2000  # read of each input; a list shows its first ~80 characters
_CONTENT = re.compile(r'"content"\s*:\s*"((?:[^"\\]|\\.)*)"')

g = t.generations
gm = t.generation_metadata


def column_values(
    conn: Connection, project_id: int, ids: Sequence[str], keys: Sequence[str] = ()
) -> dict[str, dict[str, Any]]:
    """``{id: {"input": text, "metadata.<key>": value, ...}}`` for the generations ``ids`` of the project."""
    out: dict[str, dict[str, Any]] = {gen_id: {} for gen_id in ids}
    if not ids:
        return out
    content = func.substr(g.c.body[("input", "content")].as_string(), 1, PREVIEW_CHARS, type_=String)
    q = select(g.c.id, content.label("input")).where(g.c.project_id == project_id, g.c.id.in_(list(ids)))
    for row in conn.execute(q):
        out[row.id]["input"] = input_text(row.input)
    if keys:
        q2 = select(gm.c.generation_id, gm.c.key, gm.c.value).where(
            gm.c.project_id == project_id, gm.c.generation_id.in_(list(ids)), gm.c.key.in_(list(keys))
        )
        for row in conn.execute(q2):
            out[row.generation_id][f"metadata.{row.key}"] = row.value
    return out


def input_text(raw: str | None) -> str:
    """What an input says, from the start of its content as JSON text: a prompt as it is, a message
    list as its last message that was read whole (the user's question, mostly)."""
    if not raw:
        return ""
    if not raw.startswith("["):
        return raw
    try:
        messages = json.loads(raw)
        texts = [m.get("content") for m in messages if isinstance(m, dict)]
        strings = [x if isinstance(x, str) else json.dumps(x, ensure_ascii=False) for x in texts if x]
        return strings[-1] if strings else ""
    except ValueError:  # cut by PREVIEW_CHARS: the last message whose text was read whole
        found = _CONTENT.findall(raw)
        if not found:
            return raw
        try:
            return str(json.loads(f'"{found[-1]}"'))
        except ValueError:
            return str(found[-1])


def _loose_scan(conn: Connection, column: Any, project_column: Any, project_id: int, limit: int) -> list[str]:
    names: list[str] = []
    last: str | None = None
    while len(names) < limit:
        q = select(func.min(column)).where(project_column == project_id)
        if last is not None:
            q = q.where(column > last)
        found = conn.execute(q).scalar()
        if found is None:
            break
        names.append(found)
        last = found
    return names


def metadata_keys(conn: Connection, project_id: int, limit: int = 100) -> list[str]:
    """The custom metadata keys of the project's generations, sorted, at most ``limit``."""
    return _loose_scan(conn, gm.c.key, gm.c.project_id, project_id, limit)


def score_names(conn: Connection, project_id: int, limit: int = 100) -> list[str]:
    """The names of the scores given to the project's generations, sorted, at most ``limit``."""
    sl = t.score_latest
    return _loose_scan(conn, sl.c.name, sl.c.project_id, project_id, limit)
