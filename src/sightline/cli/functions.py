"""``sightline functions sync|list``: the pipeline function registry, from the command line.

``sync`` does what the dashboard's Sync button and ``POST /api/functions/sync`` do: it registers the
built-ins and the ``custom_*.py`` functions of ``SIGHTLINE_FUNCTIONS_DIR`` (imported in a worker
process), removes the vanished ones, and prints how many were added and deleted and what failed.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from ..pipelines.sandbox import Sandbox
from ..pipelines.service import sync_functions
from ..store.access.audit import Actor
from ..store.pipelines import Synced, list_functions
from .common import database_option, errors, open_database

__all__ = ["functions"]


@click.group()
def functions() -> None:
    """Pipeline functions: register them (sync) and list them."""


@functions.command()
@database_option
@click.option(
    "--functions-dir",
    envvar="SIGHTLINE_FUNCTIONS_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of custom_*.py files",
)
@errors
def sync(database_url: str | None, functions_dir: Path | None) -> None:
    """Register the functions that exist now; remove the ones that vanished."""
    settings, db = open_database(database_url)
    if functions_dir is not None:
        settings = settings.model_copy(update={"functions_dir": functions_dir})
    db.start()
    sandbox = Sandbox(workers=1)
    try:
        done: Synced = asyncio.run(sync_functions(db, settings, sandbox, Actor("system", name="cli")))
    finally:
        sandbox.close()
        db.close()
    click.echo(f"{done.added} added, {done.deleted} deleted; {len(done.functions)} functions registered")
    for error in done.errors:
        click.echo(f"error: {error['file']}: {error['message']}", err=True)


@functions.command("list")
@database_option
@errors
def list_(database_url: str | None) -> None:
    """The registered functions, one JSON object a line."""
    _, db = open_database(database_url)
    with db.read() as conn:
        for info in list_functions(conn):
            click.echo(json.dumps(info))
