"""Engines: how Sightline connects to SQLite and PostgreSQL, and the settings of each connection.

Used by :class:`~sightline.store.engine.database.Database` and by the writer process, which builds its
own engine from the URL alone.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import re2
from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import make_url

from ...errors import InvalidInput, QueryTimeout
from .dialect import json_text

__all__ = ["Budget", "budget", "create", "is_in_memory", "linear_regex"]


def is_in_memory(url: str) -> bool:
    """Whether ``url`` names an in-memory SQLite database (seen by one process only)."""
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


def create(url: str) -> Engine:
    """The engine for ``url``, with Sightline's connection settings for its dialect."""
    parsed = make_url(url)
    dialect = parsed.get_backend_name()
    # hide_parameters: SQLAlchemy's errors and logs would quote a statement's parameters (prompts,
    # bodies); no log may hold them.
    kwargs: dict[str, Any] = {
        "json_serializer": json_text,
        "json_deserializer": orjson.loads,
        "hide_parameters": True,
    }
    if dialect == "sqlite":
        if not is_in_memory(url):
            Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)
        # The writer inserts many rows with one statement whose text differs with the row count:
        # a cache of 128 prepared statements a connection (the driver's default) then holds
        # over 100 MB of statements that will not come again. 32 keeps the usual ones.
        kwargs["connect_args"] = {"check_same_thread": False, "cached_statements": 32}
    elif dialect == "postgresql":
        if parsed.drivername == "postgresql":
            url = str(parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False))
        kwargs.update(pool_size=10, max_overflow=20)
    engine = create_engine(url, **kwargs)
    if dialect == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        _ping_when_idle(engine)
    return engine


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # Several server processes may share one file: wait for the lock instead of failing. First, so the
    # pragmas below wait too: switching a file to WAL takes its lock, and two connections opening a new
    # file at once failed there with "database is locked".
    cursor.execute("PRAGMA busy_timeout=10000")
    # 16 KiB pages (SQLite's default is 4 KiB), set while a new file is still empty (an existing file
    # keeps its own): a commit appends each page it changed to the WAL with its own system calls, and
    # with bigger pages a batch of inserts changes fewer of them. Commits cost ~30% less.
    cursor.execute("PRAGMA page_size=16384")
    # WAL: readers never block the writer nor the writer the readers, and a commit is one append.
    cursor.execute("PRAGMA journal_mode=WAL")
    # With WAL, NORMAL is still crash-safe for the database (a power cut may lose the last
    # commits, never corrupt); FULL would fsync on every commit and cap group commit throughput.
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Keep the hot part of indexes in memory (negative = KiB): 64 MiB per connection.
    cursor.execute("PRAGMA cache_size=-65536")
    # Temporary b-trees for GROUP BY / ORDER BY stay in memory.
    cursor.execute("PRAGMA temp_store=MEMORY")
    # Let reads map the file instead of copying pages through read(): cheaper large scans.
    cursor.execute("PRAGMA mmap_size=1073741824")
    cursor.execute("PRAGMA foreign_keys=ON")
    # The commit that takes the WAL past 4,000 pages (64 MiB) copies it back into the database (a
    # checkpoint) while no other write is appended, so the WAL is then reset. A page that many
    # commits change (the end of each index, a busy rollup row) is copied once per checkpoint: at
    # SQLite's default of 1,000 pages, checkpoints took a quarter of the writer's time under batch
    # ingest; at 4,000 the same load ran about 9% faster. (Checkpoints from another thread, beside
    # a busy writer, never finish and let the WAL grow without bound.)
    cursor.execute("PRAGMA wal_autocheckpoint=4000")
    # A WAL restarted after it grew (the writer's own checkpoint past WAL_LIMIT) is cut back to
    # 64 MiB on disk instead of keeping its largest size for ever.
    cursor.execute("PRAGMA journal_size_limit=67108864")
    cursor.close()
    # SQLite has no regular expressions of its own: SQLAlchemy gives REGEXP Python's `re`, which
    # backtracks (`^(a+)+$` over 28 characters held the GIL, and so the whole server, for 5.7 s).
    # RE2 runs in time linear in the text. (This listener runs after SQLAlchemy's, so it wins.)
    dbapi_connection.create_function("regexp", 2, _regexp, deterministic=True)


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a bad pattern is the caller's mistake, answered as such, not logged


@functools.lru_cache(maxsize=256)
def linear_regex(pattern: str) -> re2._Regexp[str]:
    """``pattern`` compiled by RE2: linear time, no backreferences or lookaround (else ``re2.error``)."""
    return re2.compile(pattern, _RE2_OPTIONS)


def _regexp(pattern: str | None, value: str | None) -> bool | None:
    if pattern is None or value is None:
        return None
    return linear_regex(pattern).search(value) is not None


class Budget:
    """The time one read may take. A streamed read restarts it for each chunk it fetches."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    def restart(self) -> None:
        """Give the next piece of a streamed read the whole budget again (PostgreSQL times each fetch)."""
        self.deadline = time.monotonic() + self.seconds

    def expired(self) -> bool:
        """Whether the deadline has passed (SQLite's progress handler: true cancels the statement)."""
        return time.monotonic() > self.deadline


# SQLite calls the progress handler every this many virtual-machine instructions. One instruction
# may be a function over a whole record (json_extract of a 1 MB body takes about a millisecond),
# so the count is kept small: a scan of 100,000 records (about 10 million instructions) calls the
# handler some 10,000 times, a few milliseconds in all, lost in the noise of a scan of seconds.
_PROGRESS_STEPS = 1_000
_QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE when statement_timeout cancels a statement
_INVALID_REGEX = "2201B"


@contextmanager
def budget(conn: Connection, seconds: float) -> Iterator[Budget]:
    """Cancel any statement of ``conn`` that runs longer than ``seconds`` (QueryTimeout, 503).

    SQLite: a progress handler aborts the statement past the deadline. PostgreSQL: the server's own
    ``statement_timeout``, set for this connection's transaction only (``SET LOCAL``), so the writer
    and other users of the pooled connection keep theirs.
    """
    limit = Budget(seconds)
    raw: Any = conn.connection.dbapi_connection
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        raw.set_progress_handler(limit.expired, _PROGRESS_STEPS)
    else:
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, round(seconds * 1000))}")
    try:
        yield limit
    except exc.DBAPIError as error:
        orig = error.orig
        if sqlite and isinstance(orig, sqlite3.OperationalError) and str(orig) == "interrupted":
            raise _timeout(seconds) from None
        code = getattr(orig, "sqlstate", None)
        if code is None and "cannot contain NUL" in str(orig):  # psycopg refuses before sending
            raise InvalidInput("a value holds a NUL character, which no stored text can") from None
        if code == _QUERY_CANCELED:
            raise _timeout(seconds) from None
        if code == _INVALID_REGEX:
            # Patterns pass RE2's checks first; PostgreSQL's syntax differs in a few places.
            reason = getattr(getattr(orig, "diag", None), "message_primary", None) or "invalid"
            raise InvalidInput(
                f"$regex: PostgreSQL cannot read this pattern ({reason}); it takes no named groups, "
                "\\p classes, \\z, \\Q...\\E, or flags other than (?i) at the start",
                field="$regex",
            ) from None
        raise
    finally:
        if sqlite:
            with contextlib.suppress(sqlite3.ProgrammingError):  # closed by a failure: nothing to undo
                raw.set_progress_handler(None, _PROGRESS_STEPS)


def _timeout(seconds: float) -> QueryTimeout:
    return QueryTimeout(
        f"the query ran past its time budget of {seconds:g} s (query_timeout, SIGHTLINE_QUERY_TIMEOUT) "
        "and was cancelled: narrow it (a time range, fewer or indexed fields) or raise the budget",
        field="query_timeout",
    )


_IDLE = 1.0  # seconds a pooled PostgreSQL connection may sit unused before it is pinged


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled connection before use (and replace it if dead) when it sat unused for a while.

    What ``pool_pre_ping`` does, but not for a connection that was in use a moment ago: the writer
    takes one for each commit, and a ping each time, a round trip and a statement for the server,
    cost a third of the database's work for single posts. A connection goes stale while idle (the
    server restarted, a proxy dropped it). One that breaks while busy fails its transaction: the
    writer retries the writes in it one by one, on a new connection, and a write that fails still
    is answered with its error, never acknowledged.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < _IDLE:
            return  # new, or in use a moment ago
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception:  # noqa: BLE001 - any failure of the ping means the connection is gone
            alive = False
        if not alive:
            raise exc.DisconnectionError("the pooled connection is gone")  # the pool connects anew
