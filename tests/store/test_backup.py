"""SQLite under steady writes: the online backup is one consistent snapshot, never starts over (a copy
that restarted on every write never ended under ingest) and never holds the writer up; the writer keeps
the write-ahead log bounded when SQLite's own checkpoints cannot restart it."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, create_engine, event

from sightline.store.engine.backup import sqlite_backup
from sightline.store.engine.connection import create
from sightline.store.engine.writer import Writer


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


@dataclass(slots=True)
class _Put:
    text: str
    size: int = 1

    def apply(self, conn: Connection) -> None:
        conn.exec_driver_sql("INSERT INTO filler (text) VALUES (?)", (self.text,))


def test_the_writer_keeps_the_write_ahead_log_bounded(tmp_path: Path) -> None:
    # SQLite's own checkpoints cannot restart the log while readers keep old snapshots (here: turned
    # off): then the writer restarts it itself once it passes its limit.
    engine = create(f"sqlite:///{tmp_path / 'wal.db'}")
    event.listen(engine, "connect", lambda conn, _: conn.execute("PRAGMA wal_autocheckpoint=0"))
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE filler (text TEXT)")
    writer = Writer(engine, wal_limit=512 * 1024)
    writer.start()
    try:
        for _ in range(120):
            writer.submit(_Put("z" * 40_000)).result(timeout=30)
    finally:
        writer.stop()
    written = 120 * 40_000
    assert (tmp_path / "wal.db-wal").stat().st_size < 512 * 1024 + 200_000 < written
    with sqlite3.connect(tmp_path / "wal.db") as conn:
        assert conn.execute("SELECT count(*) FROM filler").fetchone() == (120,)
