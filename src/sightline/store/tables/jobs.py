"""The job queue (migration 0006): work that can wait, claimed by workers under leases.

A job is ``queued`` until a worker claims it (``running``), then ``succeeded`` or, after its last
attempt, ``failed`` with its error kept; a failed attempt before the last puts it back to
``queued`` for later. ``due_us`` is the one time a claim looks at: for a queued job, when it may
run (now, or after its back-off); for a running one, when its lease ends (a worker that died
leaves it there, and it is claimed again once that time has passed).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from .base import Json, ShortText, metadata

__all__ = ["JOB_STATES", "jobs"]

JOB_STATES = ("queued", "running", "succeeded", "failed")

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # NULL: a job of the installation (the cache purge), seen by no project's key.
    Column("project_id", Integer, nullable=True),
    Column("kind", String(64), nullable=False),
    # Enqueueing a key that exists is a no-op: periodic jobs are keyed by kind and time bucket, so
    # every process may enqueue them and one job results.
    Column("key", ShortText, nullable=True, unique=True),
    Column("state", String(10), nullable=False),
    Column("payload", Json, nullable=False),
    Column("result", Json, nullable=True),
    Column("error", Text, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("due_us", BigInteger, nullable=False),
    # The worker holding the lease (or that held it last).
    Column("worker", String(100), nullable=True),
    Column("created_us", BigInteger, nullable=False),
    Column("started_us", BigInteger, nullable=True),
    Column("finished_us", BigInteger, nullable=True),
    # What a claim asks: jobs of a state whose time has come, soonest first.
    Index(None, "state", "due_us"),
)
