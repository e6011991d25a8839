"""The SQLite online backup under steady writes from another connection: the copy is one consistent
snapshot, never starts over (a copy that restarted on every write never ended under ingest), and the
writer is never held up for the length of the copy."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine

from sightline.store.engine.backup import sqlite_backup


def test_a_backup_under_steady_writes_is_one_snapshot_taken_once(tmp_path: Path) -> None:
    source = tmp_path / "source.db"
    with sqlite3.connect(source) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE filler (n INTEGER, text TEXT)")
        conn.executemany("INSERT INTO filler VALUES (?, ?)", [(i, "x" * 400) for i in range(20_000)])
    stop, written, slowest = threading.Event(), [0], [0.0]

    def write() -> None:
        with sqlite3.connect(source, timeout=30) as conn:
            while not stop.is_set():
                started = time.monotonic()
                conn.execute("INSERT INTO filler VALUES (?, ?)", (-1, "y" * 400))
                conn.commit()
                slowest[0] = max(slowest[0], time.monotonic() - started)
                written[0] += 1

    writer = threading.Thread(target=write)
    writer.start()
    steps: list[int] = []
    pages: list[int] = []
    engine = create_engine(f"sqlite:///{source}")

    def back_up() -> None:
        pages.append(sqlite_backup(engine, tmp_path / "copy.db", progress=steps.append, pages=16))

    copy = threading.Thread(target=back_up)
    copy.start()
    copy.join(60)
    ended_under_writes = not copy.is_alive()
    stop.set()  # (a copy that starts over on every write ends only once the writes stop)
    writer.join()
    copy.join()
    assert ended_under_writes
    assert written[0] > 0 and slowest[0] < 5  # writes went on meanwhile, none waited for the copy
    assert all(step >= 0 for step in steps) and sum(steps) == pages[0]  # progress only ever went forward
    with sqlite3.connect(tmp_path / "copy.db") as copied:
        assert copied.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows, late = copied.execute("SELECT count(*), sum(n = -1) FROM filler").fetchone()
    assert rows >= 20_000 and late < written[0]  # a snapshot taken once, before the last writes
