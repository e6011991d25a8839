"""One database: its engine, its connection settings and its single writer.

SQLite and PostgreSQL are served by the same code; the few differences between them live in this
package (``dialect.py``), never above it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from .dialect import json_text
from .writer import Writer

__all__ = ["Database"]

log = logging.getLogger(__name__)


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer nor the writer the readers, and a commit is one append.
    cursor.execute("PRAGMA journal_mode=WAL")
    # With WAL, NORMAL is still crash-safe for the database (a power cut may lose the last
    # commits, never corrupt); FULL would fsync on every commit and cap group commit throughput.
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Several server processes may share one file: wait for the lock instead of failing.
    cursor.execute("PRAGMA busy_timeout=10000")
    # Keep the hot part of indexes in memory (negative = KiB): 64 MiB per connection.
    cursor.execute("PRAGMA cache_size=-65536")
    # Temporary b-trees for GROUP BY / ORDER BY stay in memory.
    cursor.execute("PRAGMA temp_store=MEMORY")
    # Let reads map the file instead of copying pages through read(): cheaper large scans.
    cursor.execute("PRAGMA mmap_size=1073741824")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class _Checkpointer:
    """Copies the SQLite WAL back into the database file from a thread of its own.

    Left to SQLite, the commit that crosses the WAL size limit does the checkpoint, with its fsync,
    while every request waiting on that commit waits too. Here the writer's connections never
    checkpoint (``wal_autocheckpoint=0``) and this thread does a PASSIVE checkpoint every second,
    which runs beside the writer instead of in front of it.
    """

    def __init__(self, engine: Engine, interval: float = 1.0) -> None:
        self._engine, self._interval = engine, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="sightline-checkpoint", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                with self._engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            except Exception:  # a busy or locked file: the next round tries again
                log.debug("checkpoint skipped", exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None


class Database:
    """The engine of one database URL, and the writer thread that does all of its writes."""

    def __init__(self, url: str, *, write_batch_max: int = 5000) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"json_serializer": json_text, "json_deserializer": orjson.loads}
        if self.dialect == "sqlite":
            database = parsed.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False}
        elif self.dialect == "postgresql":
            if parsed.drivername == "postgresql":
                url = str(parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False))
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: Engine = create_engine(url, **kwargs)
        self._checkpointer: _Checkpointer | None = None
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "connect", self._checkpoint_pragma)
        self.writer = Writer(self.engine, max_batch=write_batch_max)

    def _checkpoint_pragma(self, dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        if self._checkpointer is not None:
            dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reading (outside the writer)."""
        with self.engine.connect() as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A connection in a transaction, for rare writes outside the hot path (CLI, admin)."""
        with self.engine.begin() as conn:
            yield conn

    def start(self) -> None:
        """Start the writer (and, on SQLite, the checkpointer): what a long-running server needs."""
        if self.dialect == "sqlite" and self._checkpointer is None:
            self._checkpointer = _Checkpointer(self.engine)
            self.engine.dispose()  # connections made from now on take wal_autocheckpoint=0
            self._checkpointer.start()
        self.writer.start()

    def close(self, timeout: float = 10.0) -> None:
        """Finish the queued writes (up to ``timeout`` seconds), then release the engine."""
        self.writer.stop(timeout)
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        self.engine.dispose()
