"""template versions: one hash for the SDK, the gateway and the store

Before this revision the SDK named a template's version with 16 hex digits of a hash of its content
written with sorted keys, and the server (for gateway calls) with 12 digits of a hash of its content
in the order it arrived: one template could be two versions. ``sightline.templating.template_version``
is now the only one. This revision recomputes every stored version from the stored template, where
the versions live: ``generations.template_version``, the ``template.version`` inside each generation's
body, and ``prompt_versions`` (where two old versions of one content become one row, the older).

Rows are read in batches of ``_BATCH`` along the primary key, so memory stays bounded however many
generations there are; only rows whose version changes are written.

The downgrade changes nothing: the old code takes any text as a version, and the old hashes could not
be told apart again (the SDK's and the server's were mixed in the same columns).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 08:30:00
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from sightline.templating import template_version

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_BATCH = 500


def _batches(
    conn: sa.Connection, table: str, key: Sequence[str], columns: str, where: str = ""
) -> Iterator[list[Any]]:
    """The rows of ``table`` (its ``key`` columns, then ``columns``) in batches, along the key.

    Each batch starts after the last key of the one before (a row-value comparison the key's
    index answers), so no batch re-reads what came before and none holds more than ``_BATCH`` rows.
    """
    keys = ", ".join(f'"{c}"' for c in key)
    after = f"({keys}) > ({', '.join(f':k{i}' for i in range(len(key)))})"
    last: Sequence[Any] | None = None
    while True:
        conditions = [c for c in (where, after if last is not None else "") if c]
        sql = (
            f'SELECT {keys}, {columns} FROM "{table}"'
            + (f" WHERE {' AND '.join(conditions)}" if conditions else "")
            + f" ORDER BY {keys} LIMIT {_BATCH}"
        )
        params = {f"k{i}": value for i, value in enumerate(last or ())}
        rows = list(conn.execute(sa.text(sql), params))
        if not rows:
            return
        yield rows
        last = tuple(rows[-1][: len(key)])


def _parsed(value: Any) -> Any:
    # JSON columns come back as text from these plain statements (the casts below ask for text).
    return json.loads(value) if isinstance(value, str | bytes) else value


def _content(template: Any) -> tuple[Any, Any] | None:
    """(chat, text) of a stored template, or None when it holds neither."""
    if not isinstance(template, dict):
        return None
    chat, text = template.get("chat"), template.get("text")
    if chat is None and text is None:
        return None
    return chat, text


def _generations(conn: sa.Connection, postgresql: bool) -> None:
    key = sa.inspect(conn).get_pk_constraint("generations")["constrained_columns"]
    template = "CAST(body -> 'template' AS TEXT)" if postgresql else "json_extract(body, '$.template')"
    set_body = (
        "jsonb_set(body, '{template,version}', to_jsonb(CAST(:body_version AS TEXT)))"
        if postgresql
        else "json_set(body, '$.template.version', :body_version)"
    )
    match = " AND ".join(f'"{c}" = :k{i}' for i, c in enumerate(key))
    update = sa.text(f"UPDATE generations SET template_version = :version, body = {set_body} WHERE {match}")
    width = len(key)
    for rows in _batches(
        conn, "generations", key, f"template_version, {template}", "template_version IS NOT NULL"
    ):
        changes = []
        for row in rows:
            content = _content(_parsed(row[width + 1]))
            if content is None:
                continue
            version = template_version(*content)
            if version != row[width]:
                changes.append(
                    {"version": version, "body_version": version, **{f"k{i}": row[i] for i in range(width)}}
                )
        if changes:
            conn.execute(update, changes)


def _prompt_versions(conn: sa.Connection, postgresql: bool) -> None:
    key = ("project_id", "name", "version")
    body = "CAST(body AS TEXT)" if postgresql else "body"
    for rows in _batches(conn, "prompt_versions", key, f"created_us, {body}"):
        for project_id, name, old, created_us, raw in rows:
            content = _content(_parsed(raw))
            if content is None:
                continue
            version = template_version(*content)
            if version == old:
                continue
            ids = {"project_id": project_id, "name": name}
            conn.execute(
                sa.text(
                    "DELETE FROM prompt_versions WHERE project_id = :project_id AND name = :name "
                    "AND version = :old"
                ),
                {**ids, "old": old},
            )
            # Two old versions of one content (the SDK's and the server's) are one now: the older stays.
            found = conn.execute(
                sa.text(
                    "SELECT created_us FROM prompt_versions WHERE project_id = :project_id AND name = :name "
                    "AND version = :version"
                ),
                {**ids, "version": version},
            ).first()
            if found is None:
                conn.execute(
                    sa.text(
                        "INSERT INTO prompt_versions (project_id, name, version, created_us, body) "
                        + (
                            "VALUES (:project_id, :name, :version, :created_us, CAST(:body AS JSONB))"
                            if postgresql
                            else "VALUES (:project_id, :name, :version, :created_us, :body)"
                        )
                    ),
                    {**ids, "version": version, "created_us": created_us, "body": raw},
                )
            elif created_us < found[0]:
                conn.execute(
                    sa.text(
                        "UPDATE prompt_versions SET created_us = :created_us WHERE project_id = :project_id "
                        "AND name = :name AND version = :version"
                    ),
                    {**ids, "version": version, "created_us": created_us},
                )


def upgrade() -> None:
    conn = op.get_bind()
    postgresql = conn.dialect.name == "postgresql"
    _generations(conn, postgresql)
    _prompt_versions(conn, postgresql)


def downgrade() -> None:
    # Nothing to undo: see the module's docstring.
    pass
