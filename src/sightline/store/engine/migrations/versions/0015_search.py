"""search: a full-text index of generations (store/generations/search.py)

SQLite: an FTS5 table ``generation_search`` (rowid: the generation's ``seq``). PostgreSQL: a table
``generation_search (seq, document tsvector)`` with a GIN index. Neither is in ``tables.metadata``:
search.py owns them. The rows already stored are indexed here, a batch at a time along ``seq`` (so
memory stays bounded however many there are): about 10,000 generations a second.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 07:00:00
"""

from __future__ import annotations

from alembic import op

from sightline.store.generations.search import backfill

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        op.execute("CREATE TABLE generation_search (seq BIGINT PRIMARY KEY, document TSVECTOR NOT NULL)")
        op.execute("CREATE INDEX ix_generation_search_document ON generation_search USING GIN (document)")
    else:
        # Words come already split and folded (search.words); remove_diacritics 0 as they have none.
        op.execute(
            "CREATE VIRTUAL TABLE generation_search USING fts5("
            "document, tokenize = 'unicode61 remove_diacritics 0')"
        )
    backfill(conn)


def downgrade() -> None:
    op.execute("DROP TABLE generation_search")
