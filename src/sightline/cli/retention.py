"""``sightline retention set|list|run``, ``sightline erase`` and ``sightline limits set``: retention
policies, erasure, rate limits and budgets."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from typing import Any

import click

from ..store.access.audit import Actor
from .common import database_option, errors, open_database
from .evals import project_id

__all__ = ["erase", "limits", "retention"]

_SYSTEM = Actor("system", name="cli")


@click.group()
def retention() -> None:
    """Retention policies: delete or anonymise generations older than N days."""


@retention.command("set")
@click.option("--project", required=True)
@click.option("--environment", default=None, help="One environment (default: all of the project)")
@click.option("--delete-after", "delete_after", type=int, default=None, metavar="DAYS")
@click.option("--anonymise-after", "anonymise_after", type=int, default=None, metavar="DAYS")
@database_option
@errors
def retention_set(
    project: str,
    environment: str | None,
    delete_after: int | None,
    anonymise_after: int | None,
    database_url: str | None,
) -> None:
    """Set a project's policy: --delete-after DAYS or --anonymise-after DAYS."""
    from ..store.retention import SetPolicy, check_policy

    if (delete_after is None) == (anonymise_after is None):
        raise click.UsageError("give exactly one of --delete-after and --anonymise-after")
    action, days = check_policy(
        "delete" if delete_after is not None else "anonymise",
        delete_after if delete_after is not None else anonymise_after,
    )
    _, db = open_database(database_url)
    pid = project_id(db, project)
    db.start()
    try:
        policy = db.writer.write_sync(
            SetPolicy(pid, environment or "", action, days, _SYSTEM, time.time_ns() // 1000)
        )
    finally:
        db.close()
    click.echo(json.dumps(policy.wire()))


@retention.command("list")
@database_option
@errors
def retention_list(database_url: str | None) -> None:
    """Every project's policies, with their last runs."""
    from ..store.access.projects import list_projects
    from ..store.retention import get_policies

    _, db = open_database(database_url)
    with db.read() as conn:
        names = {p["id"]: p["name"] for p in list_projects(conn)}
        for policy in get_policies(conn):
            click.echo(json.dumps({"project": names.get(policy.project_id), **policy.wire()}))
    db.close()


@retention.command("run")
@click.option("--project", default=None, help="Only this project's policies")
@click.option("--dry-run", is_flag=True, help="Count what would be removed; change nothing")
@database_option
@errors
def retention_run(project: str | None, dry_run: bool, database_url: str | None) -> None:
    """Apply the policies now, with a progress bar."""
    from rich.progress import Progress

    from ..jobs.retention import apply_policy
    from ..store.retention import count_expired, get_policies

    _, db = open_database(database_url)
    pid = project_id(db, project) if project else None
    now_us = time.time_ns() // 1000
    with db.read() as conn:
        policies = get_policies(conn, pid)
        sizes = [count_expired(conn, p, p.cutoff(now_us)) for p in policies]
    db.start()
    results: list[dict[str, Any]] = []
    try:
        with Progress(transient=True) as bar:
            for policy, size in zip(policies, sizes, strict=True):
                task = bar.add_task(
                    f"project {policy.project_id} {policy.environment or '*'}: {policy.action}", total=size
                )
                advance = functools.partial(bar.advance, task)
                result = asyncio.run(apply_policy(db, policy, now_us, dry_run=dry_run, progress=advance))
                results.append(
                    {"projectId": policy.project_id, "environment": policy.environment or None, **result}
                )
    finally:
        db.close()
    for result in results:
        click.echo(json.dumps(result))
    if not policies:
        click.echo("no retention policy is set (sightline retention set ...)", err=True)


@click.command()
@click.option("--project", required=True)
@click.option("--user-id", "user_id", required=True, help="The end user's id (metadata.userId)")
@click.option("--anonymise", is_flag=True, help="Keep the figures of their generations, drop the content")
@database_option
@errors
def erase(project: str, user_id: str, anonymise: bool, database_url: str | None) -> None:
    """Erase everything of one end user of a project; prints what was removed."""
    from rich.progress import Progress

    from ..jobs.retention import erase_user

    _, db = open_database(database_url)
    pid = project_id(db, project)
    db.start()
    try:
        with Progress(transient=True) as bar:
            task = bar.add_task(f"erasing {'(anonymising) ' if anonymise else ''}one user's data", total=None)
            counts = asyncio.run(
                erase_user(
                    db, pid, user_id, _SYSTEM, anonymise=anonymise, progress=lambda n: bar.advance(task, n)
                )
            )
    finally:
        db.close()
    click.echo(json.dumps(counts))


@click.group()
def limits() -> None:
    """Rate limits and budgets of a project or one of its API keys."""


@limits.command("set")
@click.option("--project", required=True)
@click.option(
    "--key", "key_id", type=int, default=None, help="An API key's id (default: the project's limits)"
)
@click.option("--requests-per-minute", type=int, default=None)
@click.option("--tokens-per-minute", type=int, default=None)
@click.option("--cost-per-day", type=float, default=None, metavar="USD")
@click.option("--cost-per-month", type=float, default=None, metavar="USD")
@click.option("--user-requests-per-minute", type=int, default=None, help="Per end user on the gateway")
@database_option
@errors
def limits_set(
    project: str,
    key_id: int | None,
    requests_per_minute: int | None,
    tokens_per_minute: int | None,
    cost_per_day: float | None,
    cost_per_month: float | None,
    user_requests_per_minute: int | None,
    database_url: str | None,
) -> None:
    """Set limits (the ones given; the others stay). Servers apply them within a second."""
    from ..store.access.limits import SetLimits, check_limits

    given = {
        "requestsPerMinute": requests_per_minute,
        "tokensPerMinute": tokens_per_minute,
        "costPerDay": cost_per_day,
        "costPerMonth": cost_per_month,
        "userRequestsPerMinute": user_requests_per_minute,
    }
    values = check_limits({k: v for k, v in given.items() if v is not None}, key_id or 0)
    if not values:
        raise click.UsageError("give at least one limit")
    _, db = open_database(database_url)
    pid = project_id(db, project)
    db.start()
    try:
        found = db.writer.write_sync(SetLimits(pid, key_id or 0, values, _SYSTEM, time.time_ns() // 1000))
    finally:
        db.close()
    click.echo(json.dumps(found.wire()))
