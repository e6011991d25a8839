"""``sightline provider``: the upstream providers a project's gateway calls forward to.

    sightline provider add --project P --name openai --base-url https://api.openai.com/v1 --api-key sk-…
    sightline provider list --project P
    sightline provider default --project P ID        (``none``: back to SIGHTLINE_UPSTREAM_URL)
    sightline provider remove --project P ID
    sightline provider cache-mode --project P use|skip|default

Keys are encrypted with a key derived from ``SIGHTLINE_SECRET_KEY``: the server must run with the
same secret. A key is never printed; give ``--api-key -`` (or leave it out) to read it from stdin
instead of the command line, where other users of the machine could see it.
"""

from __future__ import annotations

import sys

import click

from ..errors import NotFound
from ..store import Database
from .common import database_option, errors, open_database

__all__ = ["provider"]

_project_option = click.option("--project", required=True, help="Project name")


def _project_id(db: Database, name: str) -> int:
    from ..store.access.projects import list_projects

    with db.read() as conn:
        found = [p["id"] for p in list_projects(conn) if p["name"] == name]
    if not found:
        raise NotFound(f"no project {name!r}")
    return int(found[0])


@click.group()
def provider() -> None:
    """Upstream providers (base URL + API key) the gateway forwards a project's calls to."""


@provider.command("add")
@_project_option
@click.option("--name", required=True, help="A name for the provider, e.g. openai")
@click.option(
    "--base-url", required=True, help="Its OpenAI-compatible base URL, e.g. https://api.openai.com/v1"
)
@click.option("--api-key", default=None, help="Its API key ('-' or left out: read from stdin)")
@click.option("--default", "make_default", is_flag=True, help="Make it the project's default provider")
@click.option("--no-key", is_flag=True, help="The provider takes no API key (a local model server)")
@database_option
@errors
def add(
    project: str,
    name: str,
    base_url: str,
    api_key: str | None,
    make_default: bool,
    no_key: bool,
    database_url: str | None,
) -> None:
    """Store a provider (its key encrypted) and print its id alone on stdout. Says on stderr whether it
    became the project's default (the first provider does): the gateway's calls then go to it."""
    from ..store.access.projects import ensure_project
    from ..store.gateway.providers import add_provider, default_provider_id, set_default_provider

    if no_key:
        if api_key not in (None, "-"):
            raise click.UsageError("give --api-key or --no-key, not both")
        api_key = None
    else:
        if api_key is None or api_key == "-":
            if sys.stdin.isatty():
                api_key = click.prompt("API key", hide_input=True, default="", show_default=False)
            else:
                api_key = sys.stdin.readline().strip()
        if not api_key or not api_key.strip():
            raise click.UsageError("the API key is empty (a provider that needs none: --no-key)")
    settings, db = open_database(database_url)
    with db.transaction() as conn:
        project_id = ensure_project(conn, project)
        provider_id = add_provider(conn, project_id, name, base_url, api_key or None, settings.secret_key)
        if make_default:
            set_default_provider(conn, project_id, provider_id)
        default = default_provider_id(conn, project_id)
    click.echo(f"added provider {provider_id} ({name}) to project {project}", err=True)
    if default == provider_id:
        click.echo(
            f"provider {provider_id} is now the project's default: the gateway forwards the project's calls "
            "there (running servers pick it up within 5 s)",
            err=True,
        )
    click.echo(provider_id)


@provider.command("list")
@_project_option
@database_option
@errors
def list_(project: str, database_url: str | None) -> None:
    """List a project's providers (never their keys)."""
    from ..store.gateway.providers import list_providers
    from ..store.generations.records import iso

    _, db = open_database(database_url)
    project_id = _project_id(db, project)
    with db.read() as conn:
        rows = list_providers(conn, project_id)
    click.echo(f"{'ID':>4}  {'NAME':<16} {'DEFAULT':<8} {'CREATED':<28} BASE URL")
    for row in rows:
        default = "yes" if row["is_default"] else ""
        click.echo(
            f"{row['id']:>4}  {row['name']:<16} {default:<8} {iso(row['created']):<28} {row['base_url']}"
        )


@provider.command("remove")
@_project_option
@click.argument("provider_id", type=int)
@database_option
@errors
def remove(project: str, provider_id: int, database_url: str | None) -> None:
    """Delete a provider and its key."""
    from ..store.gateway.providers import remove_provider

    _, db = open_database(database_url)
    project_id = _project_id(db, project)
    with db.transaction() as conn:
        remove_provider(conn, project_id, provider_id)
    click.echo(f"removed provider {provider_id}", err=True)


@provider.command("default")
@_project_option
@click.argument("provider_id")
@database_option
@errors
def default(project: str, provider_id: str, database_url: str | None) -> None:
    """Make PROVIDER_ID the project's default provider (``none``: the server's upstream settings)."""
    from ..store.gateway.providers import set_default_provider

    if provider_id != "none" and not provider_id.isdigit():
        raise click.UsageError("PROVIDER_ID: expected a provider id or 'none'")
    _, db = open_database(database_url)
    project_id = _project_id(db, project)
    with db.transaction() as conn:
        set_default_provider(conn, project_id, None if provider_id == "none" else int(provider_id))
    click.echo(f"project {project} now defaults to provider {provider_id}", err=True)


@provider.command("cache-mode")
@_project_option
@click.argument("mode", type=click.Choice(["use", "skip", "default"]))
@database_option
@errors
def cache_mode(project: str, mode: str, database_url: str | None) -> None:
    """The project's gateway cache default: ``use``, ``skip``, or ``default`` (the gateway's own:
    skip on /v1, use on the AI-Eye endpoints). A request's X-Sightline-Cache header still wins."""
    from ..store.gateway.providers import set_cache_mode

    _, db = open_database(database_url)
    project_id = _project_id(db, project)
    with db.transaction() as conn:
        set_cache_mode(conn, project_id, None if mode == "default" else mode)
    click.echo(f"project {project}: cache mode {mode}", err=True)
