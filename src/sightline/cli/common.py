"""What every ``sightline`` command shares: the database option, opening it, and how errors end a command."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from ..errors import SightlineError
from ..settings import Settings
from ..store import Database, migrate

__all__ = ["database_option", "errors", "open_database", "settings"]

F = TypeVar("F", bound=Callable[..., Any])

database_option = click.option(
    "--database-url",
    envvar="SIGHTLINE_DATABASE_URL",
    default=None,
    help="SQLAlchemy URL (default: sqlite under SIGHTLINE_HOME)",
)


def settings(**overrides: Any) -> Settings:
    """The settings, with the flags that were given (``None``: not given) over the environment."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def open_database(database_url: str | None) -> tuple[Settings, Database]:
    """The settings and the database, migrated to the newest schema."""
    resolved = settings(database_url=database_url)
    # Which database a command used is never a guess (a stray ./sightline.db once took a new key).
    click.echo(f"database: {make_url(resolved.database_url).render_as_string(hide_password=True)}", err=True)
    db = Database(resolved.database_url)
    migrate(db.engine)
    return resolved, db


def errors(fn: F) -> F:
    """End a command that hit a SightlineError (or bad settings) with a one-line message and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SightlineError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(1)
        except ValidationError as exc:  # settings: never echo the input (it may be the secret key)
            problems = (
                ".".join(map(str, e["loc"])) + ": " * bool(e["loc"]) + e["msg"].removeprefix("Value error, ")
                for e in exc.errors(include_input=False, include_url=False)
            )
            click.echo(f"error: {'; '.join(problems)}", err=True)
            sys.exit(1)
        except ValueError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]
