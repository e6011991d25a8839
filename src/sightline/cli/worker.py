"""``sightline worker``: run background jobs in a process apart from the servers.

For deployments that keep jobs (evaluations, the cache purge, ...) off the processes answering
requests: set ``SIGHTLINE_JOBS_IN_SERVE=false`` for ``serve`` and run one or more workers on the same
database. Workers and servers share the queue; a job runs in one of them at a time.
"""

from __future__ import annotations

import asyncio
import logging
import signal

import click

from ..settings import Settings
from ..store import Database
from .common import database_option, errors, open_database
from .common import settings as resolve_settings

__all__ = ["worker"]

log = logging.getLogger(__name__)


@click.command()
@database_option
@click.option("--log-level", envvar="SIGHTLINE_LOG_LEVEL", default=None, help="debug, info, warning, error")
@errors
def worker(database_url: str | None, log_level: str | None) -> None:
    """Run background jobs until stopped (Ctrl-C or SIGTERM). Migrates the database first."""
    settings = resolve_settings(database_url=database_url, log_level=log_level)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _, db = open_database(settings.database_url)
    asyncio.run(_work(settings, db))


async def _work(settings: Settings, db: Database) -> None:
    from ..evals.evaluator import Services
    from ..gateway import Gateway
    from ..jobs import Runner
    from ..pipelines.sandbox import Sandbox
    from ..server.app import job_handlers

    db.start()
    gateway, sandbox = Gateway(settings, db), Sandbox()  # for LLM judges and function evaluators
    runner = Runner.from_settings(
        db, job_handlers(settings, Services(db, gateway, sandbox, settings)), settings
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    runner.start()
    log.info(
        "sightline worker %s running jobs of kinds %s", runner.worker, ", ".join(runner.handlers.names())
    )
    try:
        await stopping.wait()
    finally:
        await runner.stop()  # running jobs get a moment to end; the rest are given back
        await gateway.aclose()  # hands the judges' records to the writer
        sandbox.close()
        db.close()
