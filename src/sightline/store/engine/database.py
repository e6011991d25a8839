"""One database: its engine and its single writer.

SQLite and PostgreSQL are served by the same code; the few differences between them live in this
package (``connection.py``, ``dialect.py``), never above it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TypeVar

from sqlalchemy import Connection, Engine, select
from sqlalchemy.engine import make_url

from .. import tables as t
from .connection import Budget, budget, create, is_in_memory
from .writer import QueuedWriter, Writer
from .writer_process import ProcessWriter

__all__ = ["Database"]

T = TypeVar("T")


class Database:
    """The engine of one database URL, and the writer that does all of its writes: a thread, or
    with ``writer_process`` a process of its own (see ``writer_process``)."""

    def __init__(
        self,
        url: str,
        *,
        write_batch_max: int = 5000,
        writer_process: bool = False,
        query_timeout: float = 5.0,
    ) -> None:
        self.url = url
        self.query_timeout = query_timeout
        self.dialect = make_url(url).get_backend_name()
        self.engine: Engine = create(url)
        in_memory = is_in_memory(url)
        self.writer: QueuedWriter = (
            ProcessWriter(url, max_batch=write_batch_max)
            if writer_process and not in_memory  # another process cannot see this one's memory
            else Writer(self.engine, max_batch=write_batch_max)
        )

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @cached_property
    def install_id(self) -> str:
        """This install's random id (migration 0013), the same in every process over this database."""
        with self.read() as conn:
            return str(conn.scalar(select(t.install.c.id)))

    def shared_name(self, *parts: object) -> str:
        """The name of something this install keeps in a place installs may share (a Redis key): under
        the install's id, so two installs on one Redis never meet."""
        return ":".join(["sightline", self.install_id, *map(str, parts)])

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reading (outside the writer), with a time budget: a statement still running
        ``query_timeout`` seconds after it started (on SQLite: after the block started) is cancelled,
        and QueryTimeout (503) raised."""
        with self.engine.connect() as conn, budget(conn, self.query_timeout):
            yield conn

    async def read_in_thread(self, query: Callable[[Connection], T]) -> T:
        """``query(conn)`` on a read connection (with its time budget) in a worker thread: the event
        loop goes on answering ingest and the gateway while the database works."""

        def run() -> T:
            with self.read() as conn:
                return query(conn)

        return await asyncio.to_thread(run)

    @contextmanager
    def stream(self) -> Iterator[tuple[Connection, Budget]]:
        """A connection for a long streamed read: its budget applies to each chunk (``Budget.restart``)."""
        with self.engine.connect() as conn, budget(conn, self.query_timeout) as limit:
            yield conn, limit

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A connection in a transaction, for rare writes outside the hot path (CLI, admin)."""
        with self.engine.begin() as conn:
            yield conn

    def start(self) -> None:
        """Start the writer: what a long-running server needs."""
        self.writer.start()

    def close(self, timeout: float = 10.0) -> None:
        """Finish the queued writes (up to ``timeout`` seconds), then release the engine."""
        self.writer.stop(timeout)
        self.engine.dispose()
