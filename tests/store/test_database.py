"""The database under the server: the SQLite write-ahead log stays small under sustained writes, and a
PostgreSQL connection that went away while idle is replaced."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from sightline.schema import Generation
from sightline.store import Database, Scope, migrate
from sightline.store.engine import connection
from sightline.store.generations.ingest import InsertGenerations, prepare_generation
from tests.conftest import PG_ADMIN_URL


def test_the_wal_stays_bounded_while_the_writer_is_busy(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    db = Database(f"sqlite:///{path}")
    migrate(db.engine)
    db.start()
    scope = Scope(1, "dev")
    wal = Path(f"{path}-wal")
    sizes = []
    try:
        for batch in range(120):
            items = [
                prepare_generation(
                    Generation.model_validate(
                        {
                            "id": str(uuid.uuid4()),
                            "model": {"id": "gpt-4o"},
                            "output": {"content": "x" * 2000},
                            "metadata": {"userId": f"u{batch}", "plan": "pro"},
                        }
                    ),
                    scope,
                )
                for _ in range(200)
            ]
            db.writer.write_sync(InsertGenerations(scope, items), timeout=30)
            sizes.append(wal.stat().st_size if wal.exists() else 0)
    finally:
        db.close()
    # 24,000 generations of ~2 KB went through, well over 100 MiB of log; the log is reset at each
    # checkpoint (past 4,000 pages of 16 KiB) instead of growing.
    assert max(sizes) < 80 * 1024 * 1024, sizes


@pytest.mark.parametrize("dialect", ["postgresql"])
def test_a_pooled_connection_that_died_while_idle_is_replaced(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server restarted, or a proxy dropped the connection: the next write still lands."""
    monkeypatch.setattr(connection, "_IDLE", 0.2)
    db = Database(database_url)
    db.start()
    scope = Scope(1, "dev")
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with db.read() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        time.sleep(0.3)
        gen = Generation.model_validate({"model": {"id": "gpt-4o"}})
        op = InsertGenerations(scope, [prepare_generation(gen, scope)])
        assert db.writer.write_sync(op, timeout=30) == [True]
        with db.read() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar() != pid
            assert conn.execute(text("SELECT count(*) FROM generations")).scalar() == 1
    finally:
        admin.dispose()
        db.close()
