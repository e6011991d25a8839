"""``sightline eval run`` (an evaluator over past generations) and ``sightline dataset list|export``,
with progress bars.

The run is a backfill job on the one queue, run here (and by any ``serve`` or ``worker`` on the same
database that claims it first): stopping this command leaves the job where it got to, and
``sightline eval run --job ID`` (or any running server) finishes it without scoring anything twice.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import click

from ..errors import InvalidInput, NotFound
from ..settings import Settings
from ..store import Database
from .common import database_option, errors, open_database

__all__ = ["dataset", "eval_"]


def project_id(db: Database, name: str) -> int:
    """The id of the project called ``name``; NotFound if there is none."""
    from ..store.access.projects import list_projects

    with db.read() as conn:
        found = [p for p in list_projects(conn) if p["name"] == name]
    if not found:
        raise NotFound(f"no project {name!r}")
    return int(found[0]["id"])


@click.group("eval")
def eval_() -> None:
    """Evaluations: run an evaluator over past generations."""


@eval_.command("run")
@click.option("--project", required=True, help="The evaluator's project")
@click.option("--evaluator", "evaluator_ref", default=None, help="The evaluator's name or id")
@click.option("--filter", "filter_text", default="{}", show_default=True, help="MongoDB-style filter (JSON)")
@click.option("--job", "job_id", type=int, default=None, help="Resume (or follow) this backfill job instead")
@click.option("--yes", is_flag=True, help="Do not ask before a judge runs over many generations")
@database_option
@errors
def eval_run(
    project: str,
    evaluator_ref: str | None,
    filter_text: str,
    job_id: int | None,
    yes: bool,
    database_url: str | None,
) -> None:
    """Run an evaluator over the generations FILTER matches (newest first), showing its progress."""
    from ..evals.evaluator import check_filter
    from ..evals.jobs import BACKFILL_KIND
    from ..store.evals.evaluators import estimate, get_evaluator
    from ..store.jobs import Enqueue

    settings, db = open_database(database_url)
    pid = project_id(db, project)
    db.start()
    try:
        if job_id is None:
            if evaluator_ref is None:
                raise click.UsageError("give --evaluator (or --job to resume a run)")
            try:
                flt = check_filter(json.loads(filter_text))
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"filter: not valid JSON: {exc}", field="filter") from None
            with db.read() as conn:
                ev = get_evaluator(conn, pid, evaluator_ref)
                judge_model = ev.config.get("model") if ev.type == "llm_judge" else None
                guess = estimate(conn, pid, flt, judge_model)
            line = f"{ev.name} v{ev.version} over {guess['generations']} generations"
            if judge_model:
                cost = guess["estimatedCost"]
                line += f"; the judge ({judge_model}) costs about " + (
                    f"${cost:.4f}" if cost is not None else "an unknown amount (its prices are not known)"
                )
            click.echo(line, err=True)
            if judge_model and guess["generations"] > 100 and not yes:
                click.confirm("run it?", abort=True, err=True)
            now = time.time_ns() // 1000
            job_id = int(
                db.writer.write_sync(
                    Enqueue(
                        BACKFILL_KIND,
                        {"evaluatorId": ev.id, "filter": flt},
                        now,
                        settings.job_max_attempts,
                        pid,
                    )
                )
            )
            click.echo(f"job {job_id}", err=True)
        result = asyncio.run(_run(settings, db, pid, job_id))
    finally:
        db.close()
    click.echo(json.dumps(result))


async def _run(settings: Settings, db: Database, pid: int, job_id: int) -> dict[str, Any]:
    from rich.progress import Progress

    from ..evals.evaluator import Services
    from ..evals.jobs import BACKFILL_KIND, Evaluations
    from ..gateway import Gateway
    from ..jobs import Handlers, Runner
    from ..pipelines.sandbox import Sandbox
    from ..store.jobs import get_job

    gateway, sandbox = Gateway(settings, db), Sandbox()
    # Only backfills run here: online evaluation and the other periodic jobs are the servers' work.
    evaluations = Evaluations(Services(db, gateway, sandbox, settings))
    handlers = Handlers()
    handlers.add(BACKFILL_KIND, evaluations.backfill)
    runner = Runner.from_settings(db, handlers, settings)
    runner.poll = min(runner.poll, 0.5)
    runner.start()
    try:
        with Progress(transient=True) as progress:
            task = progress.add_task(f"job {job_id}", total=None)
            while True:
                with db.read() as conn:
                    job = get_job(conn, pid, job_id)
                progress.update(task, completed=job["done"] or 0, total=job["total"])
                if job["status"] in ("succeeded", "failed"):
                    break
                await asyncio.sleep(0.2)
    finally:
        await runner.stop()
        await gateway.aclose()
        sandbox.close()
    if job["status"] == "failed":
        raise InvalidInput(f"job {job_id} failed: {job['error']}")
    return {
        "jobId": job_id,
        "status": job["status"],
        "done": job["done"],
        "total": job["total"],
        "errors": job["errors"],
    }


@click.group("dataset")
def dataset() -> None:
    """Datasets: list them, export one as fine-tuning chat JSONL, eval JSONL or CSV."""


@dataset.command("list")
@click.option("--project", required=True)
@database_option
@errors
def dataset_list(project: str, database_url: str | None) -> None:
    """The project's datasets: name, version, items."""
    from ..store.evals.datasets import list_datasets

    _, db = open_database(database_url)
    pid = project_id(db, project)
    with db.read() as conn:
        for ds in list_datasets(conn, pid):
            click.echo(f"{ds.name:<40} v{ds.version:<5} {ds.items} items")
    db.close()


@dataset.command("export")
@click.argument("name")
@click.option("--project", required=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["openai-chat", "jsonl", "csv"]),
    default="openai-chat",
    show_default=True,
)
@click.option("--version", type=int, default=None, help="A past version (default: the current one)")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True)
@database_option
@errors
def dataset_export(
    name: str, project: str, fmt: str, version: int | None, output: Path, database_url: str | None
) -> None:
    """Write dataset NAME to a file, with a progress bar."""
    from rich.progress import Progress

    from ..store.evals.datasets import export_items, get_dataset

    _, db = open_database(database_url)
    pid = project_id(db, project)
    with db.read() as conn:
        ds = get_dataset(conn, pid, name, version)
    written = 0
    with output.open("wb") as out, Progress(transient=True) as progress:
        task = progress.add_task(f"exporting {ds.name} v{ds.version}", total=ds.items)
        for chunk in export_items(db, ds, fmt):
            out.write(chunk)
            written += max(0, chunk.count(b"\n") - (1 if fmt == "csv" and written == 0 else 0))
            progress.update(task, completed=min(written, ds.items))
    db.close()
    click.echo(f"wrote {ds.name} v{ds.version} ({ds.items} items) to {output}", err=True)
