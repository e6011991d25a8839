"""The ``sightline`` command.

Every subcommand reads the same settings as ``serve``: a flag beats a ``SIGHTLINE_*`` environment
variable, which beats the default. Errors end with a one-line message and exit code 1 (2 for usage).
"""

from __future__ import annotations

import getpass
import ipaddress
import logging
import os
import sys
from pathlib import Path

import click

from ..settings import SECRET_FILE
from ..store import Database, migrate
from .common import database_option, errors, open_database
from .common import settings as resolve_settings


@click.group()
@click.version_option(package_name="sightline")
def cli() -> None:
    """Sightline: see every call your application makes to a large language model."""


@cli.command()
@click.option("--host", envvar="SIGHTLINE_HOST", default=None, help="Address to listen on [127.0.0.1]")
@click.option("--port", envvar="SIGHTLINE_PORT", type=int, default=None, help="Port [8000]")
@click.option("--workers", envvar="SIGHTLINE_WORKERS", type=int, default=None, help="Server processes [1]")
@database_option
@click.option("--log-level", envvar="SIGHTLINE_LOG_LEVEL", default=None, help="debug, info, warning, error")
@errors
def serve(
    host: str | None, port: int | None, workers: int | None, database_url: str | None, log_level: str | None
) -> None:
    """Run the server (API, gateway, dashboard). Creates and migrates the database first."""
    import uvicorn

    settings = resolve_settings(
        host=host, port=port, workers=workers, database_url=database_url, log_level=log_level
    )
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if settings.secret_generated and not _loopback(settings.host):
        logging.getLogger("sightline.cli").warning(
            "serving on %s with the secret generated in %s: fine for one machine, but set "
            "SIGHTLINE_SECRET_KEY (32+ characters, kept apart from the data) and "
            "SIGHTLINE_ENVIRONMENT=production for a server others reach",
            settings.host,
            settings.home / SECRET_FILE,
        )
    db = Database(settings.database_url)
    migrate(db.engine)
    db.engine.dispose()
    # Worker processes build their own settings from the environment: hand the resolved ones down.
    os.environ["SIGHTLINE_DATABASE_URL"] = settings.database_url
    click.echo(
        f"Sightline serving {_safe_url(settings.database_url)} at http://{settings.host}:{settings.port}",
        err=True,
    )
    uvicorn.run(
        "sightline.server.app:app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=10,
        lifespan="on",
    )


def _loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@cli.command("migrate")
@database_option
@errors
def migrate_(database_url: str | None) -> None:
    """Create the database or bring it to the newest schema."""
    _, db = open_database(database_url)
    click.echo(f"database {_safe_url(db.url)} is up to date", err=True)


@cli.group()
def token() -> None:
    """API keys: create, list, revoke."""


@token.command("create")
@click.option("--project", required=True, help="Project name (made when new)")
@click.option("--environment", default="dev", show_default=True, help="Environment (made when new)")
@click.option("--name", default=None, help="A label to tell keys apart")
@database_option
@errors
def token_create(project: str, environment: str, name: str | None, database_url: str | None) -> None:
    """Make an API key and print it once, alone on stdout (only its hash is stored)."""
    from ..store.access.projects import create_key

    _, db = open_database(database_url)
    with db.transaction() as conn:
        secret, key = create_key(conn, project, environment, name)
    click.echo(
        f"created key {key.id} ({key.prefix}…) for {key.project}/{key.environment}; it is shown only now",
        err=True,
    )
    click.echo(secret)


@token.command("list")
@database_option
@errors
def token_list(database_url: str | None) -> None:
    """List API keys (never their secrets)."""
    from ..store.access.projects import list_keys
    from ..store.generations.records import iso

    _, db = open_database(database_url)
    with db.read() as conn:
        keys = list_keys(conn)
    click.echo(f"{'ID':>4}  {'PREFIX':<12} {'PROJECT':<20} {'ENVIRONMENT':<12} {'CREATED':<28} STATUS")
    for k in keys:
        status = f"revoked {iso(k.revoked_us)}" if k.revoked_us else "active"
        click.echo(
            f"{k.id:>4}  {k.prefix:<12} {k.project:<20} {k.environment:<12} {iso(k.created_us):<28} {status}"
        )


@token.command("revoke")
@click.argument("key")
@database_option
@errors
def token_revoke(key: str, database_url: str | None) -> None:
    """Revoke a key by its id or prefix."""
    from ..store.access.projects import revoke_key

    _, db = open_database(database_url)
    with db.transaction() as conn:
        revoked = revoke_key(conn, key)
    click.echo(f"revoked key {revoked.id} ({revoked.prefix}…)", err=True)


@cli.command("create-admin")
@click.option("--username", default=None)
@click.option("--password", default=None)
@click.option("--role", type=click.Choice(["admin", "member"]), default="admin", show_default=True)
@database_option
@errors
def create_admin(username: str | None, password: str | None, role: str, database_url: str | None) -> None:
    """Add a dashboard user (prompts for what is missing when run in a terminal)."""
    from ..store.access.projects import create_user

    if username is None or password is None:
        if not sys.stdin.isatty():
            raise click.UsageError("--username and --password are required when not run in a terminal")
        username = username or click.prompt("Username")
        if password is None:
            password = getpass.getpass("Password: ")
            if getpass.getpass("Repeat password: ") != password:
                raise click.UsageError("the passwords differ")
    _, db = open_database(database_url)
    with db.transaction() as conn:
        user = create_user(conn, username, password, role)
    click.echo(f"created {user.role} {user.username!r}", err=True)


@cli.command("export")
@click.option("--project", required=True, help="Project to export")
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "csv", "openai-chat"]), default="jsonl", show_default=True
)
@click.option("--filter", "filters", multiple=True, help="A list filter as name=value (repeatable)")
@click.option("--field", "fields", multiple=True, help="A field path to include (repeatable)")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True)
@database_option
@errors
def export_(
    project: str,
    fmt: str,
    filters: tuple[str, ...],
    fields: tuple[str, ...],
    output: Path,
    database_url: str | None,
) -> None:
    """Export generations to a file, with a progress bar."""
    from rich.progress import Progress

    from ..errors import NotFound
    from ..server.filters import GenerationFilter
    from ..store.access.projects import list_projects
    from ..store.generations.reads.export import count, export

    pairs = []
    for item in filters:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.UsageError(f"--filter {item!r}: expected name=value")
        pairs.append((name, value))
    f, _, _ = GenerationFilter.from_params(pairs)
    flt = f.to_mongo()
    _, db = open_database(database_url)
    with db.read() as conn:
        found = [p for p in list_projects(conn) if p["name"] == project]
    if not found:
        raise NotFound(f"no project {project!r}")
    pid = found[0]["id"]
    total = count(db, pid, flt)
    written = 0
    with output.open("wb") as out, Progress(transient=True) as progress:
        task = progress.add_task(f"exporting {total} generations", total=total)
        for chunk in export(db, pid, flt, fmt, list(fields) or None):  # type: ignore[arg-type]
            out.write(chunk)
            lines = chunk.count(b"\n")
            written += lines
            progress.update(task, completed=min(written, total))
    click.echo(f"wrote {total} generations to {output}", err=True)


def _register_groups() -> None:
    from .backups import backup, restore
    from .evals import dataset, eval_
    from .functions import functions
    from .providers import provider
    from .retention import erase, limits, retention
    from .worker import worker

    cli.add_command(backup)
    cli.add_command(restore)
    cli.add_command(dataset)
    cli.add_command(eval_)
    cli.add_command(functions)
    cli.add_command(provider)
    cli.add_command(retention)
    cli.add_command(erase)
    cli.add_command(limits)
    cli.add_command(worker)


_register_groups()


def main() -> None:
    cli(prog_name="sightline")
