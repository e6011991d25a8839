"""The job runner: an asyncio task that claims jobs, runs their handlers, and records how they ended.

One runs inside every ``sightline serve`` process (unless ``SIGHTLINE_JOBS_IN_SERVE=false``) and in
each ``sightline worker``. They share the ``jobs`` table and never run a job twice at once: a claim
leases the job to one runner (``store/jobs/queue.py``), the runner renews the lease while the
handler works, and a runner that dies simply stops renewing; once the lease has run out another
runner claims the job and runs it again. So a handler must be safe to run again (its writes commit
only with a completion that still holds the lease).

A failed attempt is retried after ``backoff * 2**(attempt - 1)`` seconds (at most ``backoff_max``),
until the job's attempts are spent; then the job is failed and its last error kept.

Periodic kinds are enqueued by every runner, for the current period, under the key
``<kind>@<period start>``: the table keeps one job per key, so processes race harmlessly and each
period's job runs once, wherever it is claimed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from ..errors import SightlineError
from ..settings import Settings
from ..store import Database
from ..store.jobs import Claim, Complete, Enqueue, Fail, Job, LeaseLost, Release, Renew
from .handlers import Handlers, Kind

__all__ = ["Runner"]

log = logging.getLogger(__name__)


def _worker_name() -> str:
    """Who holds a lease: host, process, and a random part (two runners of one process differ)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Runner:
    """Runs the jobs of the kinds in ``handlers`` from ``db``'s queue."""

    def __init__(
        self,
        db: Database,
        handlers: Handlers,
        *,
        lease: float = 60.0,
        max_attempts: int = 5,
        backoff: float = 10.0,
        backoff_max: float = 3600.0,
        poll: float = 1.0,
        concurrency: int = 4,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if lease <= 0 or poll <= 0 or concurrency < 1 or max_attempts < 1 or backoff < 0:
            raise ValueError("lease and poll must be above zero, concurrency and max_attempts at least 1")
        self._db = db
        self.handlers = handlers
        self.lease = lease
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.poll = poll
        self.concurrency = concurrency
        self._clock = clock
        self.worker = _worker_name()
        self._running: dict[int, asyncio.Task[None]] = {}
        self._periods: dict[str, int] = {}  # kind -> start (µs) of the last period this runner enqueued
        self._wake = asyncio.Event()
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, db: Database, handlers: Handlers, settings: Settings) -> Runner:
        """A runner with the ``job_*`` settings."""
        return cls(
            db,
            handlers,
            lease=settings.job_lease_seconds,
            max_attempts=settings.job_max_attempts,
            backoff=settings.job_backoff_seconds,
            poll=settings.job_poll_seconds,
            concurrency=settings.job_concurrency,
        )

    def _now_us(self) -> int:
        return int(self._clock() * 1_000_000)

    # enqueueing

    async def enqueue(
        self,
        kind: str,
        payload: dict[str, Any] | None = None,
        *,
        project_id: int | None = None,
        key: str | None = None,
        delay: float = 0.0,
        max_attempts: int | None = None,
    ) -> int:
        """Add a job (answers its id; with a ``key`` some job has already, that job's id). Runs here
        soon, or in any other runner of the deployment."""
        found = self.handlers.get(kind)
        attempts = max_attempts or (found.max_attempts if found else None) or self.max_attempts
        now = self._now_us()
        op = Enqueue(kind, payload or {}, now, attempts, project_id, key, now + int(delay * 1_000_000))
        job_id = int(await self._db.writer.write(op))
        self._wake.set()
        return job_id

    def wake(self) -> None:
        """Look for due jobs now (one was enqueued by a write of its own, not :meth:`enqueue`)."""
        self._wake.set()

    async def enqueue_periodic(self) -> None:
        """Enqueue each periodic kind's job for the current period, once per period and process."""
        now = self._now_us()
        for kind in self.handlers.periodic():
            assert kind.every is not None
            every_us = max(1, int(kind.every * 1_000_000))
            start = now - now % every_us
            if self._periods.get(kind.name) == start:
                continue
            op = Enqueue(
                kind.name,
                {},
                now,
                kind.max_attempts or self.max_attempts,
                key=f"{kind.name}@{start}",
                due_us=start,
            )
            await self._db.writer.write(op)
            self._periods[kind.name] = start

    # running

    async def run_once(self) -> int:
        """Enqueue the periodic jobs, then run every job that is due now, and wait for them to end;
        answers how many ran. (The loop of :meth:`run` does the same without waiting.)"""
        await self.enqueue_periodic()
        ran = 0
        while True:
            started = await self._claim()
            ran += len(started)
            if not started and not self._running:
                return ran
            await asyncio.wait(list(self._running.values()), return_when=asyncio.FIRST_COMPLETED)

    async def run(self) -> None:
        """Claim and run jobs until :meth:`stop`; errors of the database are logged and waited out."""
        while not self._stopping:
            self._wake.clear()
            claimed = 0
            try:
                await self.enqueue_periodic()
                claimed = len(await self._claim())
            except SightlineError as exc:  # the writer is stopping or restarting
                log.warning("job runner: %s", exc.message)
            except Exception:  # noqa: BLE001 - the database is down: keep the runner alive, try again
                log.exception("job runner could not claim jobs")
            if claimed and len(self._running) < self.concurrency:
                continue  # more may be due: claim again at once
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll)

    def start(self) -> None:
        """Run :meth:`run` as a task of the running event loop."""
        if self._loop_task is None:
            self._stopping = False
            self._loop_task = asyncio.get_running_loop().create_task(self.run(), name="sightline-jobs")

    async def stop(self, timeout: float = 10.0) -> None:
        """Claim no more; let running jobs end (at most ``timeout`` seconds), then give back the
        jobs still running, unfinished, for another runner."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await self._loop_task
            self._loop_task = None
        if self._running:
            _, pending = await asyncio.wait(list(self._running.values()), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    async def _claim(self) -> list[Job]:
        free = self.concurrency - len(self._running)
        if free <= 0 or self._stopping:
            return []
        now = self._now_us()
        claim = Claim(self.worker, self.handlers.names(), now, now + int(self.lease * 1_000_000), free)
        claimed: list[Job] = await self._db.writer.write(claim)
        # A job already running here had its lease run out (renewals failed): the claim renewed it.
        jobs = [job for job in claimed if job.id not in self._running]
        for job in jobs:
            kind = self.handlers.get(job.kind)
            assert kind is not None  # only kinds this runner has are claimed
            task = asyncio.get_running_loop().create_task(self._run_job(job, kind), name=f"job-{job.id}")
            self._running[job.id] = task
            task.add_done_callback(functools.partial(self._finished, job.id))
        return jobs

    def _finished(self, job_id: int, _task: asyncio.Task[None]) -> None:
        self._running.pop(job_id, None)
        self._wake.set()  # a slot is free

    async def _run_job(self, job: Job, kind: Kind) -> None:
        renewing = asyncio.get_running_loop().create_task(self._renew(job))
        try:
            try:
                write = await kind.handler(job)
            except asyncio.CancelledError:
                await self._give_back(job)
                raise
            except Exception as exc:  # noqa: BLE001 - a handler's failure is its job's, never the runner's
                await self._failed(job, exc)
                return
            try:
                await self._db.writer.write(Complete(job.id, self.worker, self._now_us(), write))
            except LeaseLost:
                log.warning("job %d (%s) ran past its lease; another worker has it", job.id, job.kind)
            except Exception as exc:  # noqa: BLE001 - its write failed: a failed attempt
                await self._failed(job, exc)
        finally:
            renewing.cancel()

    def retry_delay(self, attempt: int) -> float:
        """Seconds before the next attempt, after attempt number ``attempt`` (from 1) failed."""
        return float(min(self.backoff * 2 ** max(0, attempt - 1), self.backoff_max))

    async def _failed(self, job: Job, exc: BaseException) -> None:
        now = self._now_us()
        last = job.attempts >= job.max_attempts
        retry_at = None if last else now + int(self.retry_delay(job.attempts) * 1_000_000)
        # The error's type only: its message may quote a prompt or a key. It is kept with the job.
        log.warning(
            "job %d (%s) attempt %d/%d failed with %s%s",
            job.id,
            job.kind,
            job.attempts,
            job.max_attempts,
            type(exc).__name__,
            "; giving up" if last else "",
        )
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        try:
            await self._db.writer.write(Fail(job.id, self.worker, now, error, retry_at))
        except Exception:  # noqa: BLE001 - the lease runs out and the job is claimed again
            log.exception("could not record the failure of job %d", job.id)

    async def _give_back(self, job: Job) -> None:
        try:
            await self._db.writer.write(Release(job.id, self.worker, self._now_us()))
        except Exception:  # noqa: BLE001 - the lease runs out and the job is claimed again
            log.warning("could not give back job %d; it runs again once its lease ends", job.id)

    async def _renew(self, job: Job) -> None:
        """Extend the lease while the handler works (every third of it)."""
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                until = self._now_us() + int(self.lease * 1_000_000)
                if not await self._db.writer.write(Renew(job.id, self.worker, until)):
                    log.warning("job %d (%s) lost its lease while running", job.id, job.kind)
                    return
            except Exception:  # noqa: BLE001 - try again at the next turn; the lease is still long
                log.warning("could not renew the lease of job %d", job.id)
