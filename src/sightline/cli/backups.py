"""``sightline backup`` and ``sightline restore``: online backups, with progress bars.

``backup [PATH] [--keep N] [--format auto|sqlite|jsonl]``: PATH is a file, or a folder (default
``backups/`` under ``SIGHTLINE_HOME``) that gets a dated file, ``sightline-<UTC time>.db`` (a SQLite
database, copied with SQLite's online backup API) or ``.jsonl.gz`` (the portable JSON-lines format,
also PostgreSQL's). ``--keep N`` then deletes all but the newest N backups in that folder.
``restore FILE [--force]`` loads either kind, refuses a database that holds data unless ``--force``,
and checks the row counts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from .common import database_option, errors, open_database

__all__ = ["backup", "restore"]

_PREFIX = "sightline-"


def _target(path: Path | None, home: Path, fmt: str) -> tuple[Path, Path | None]:
    """The file to write, and the folder of dated backups it goes into (None: a file was named)."""
    folder = path if path is not None else home / "backups"
    if path is not None and (path.suffix or (path.exists() and not path.is_dir())):
        return path, None
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return folder / f"{_PREFIX}{stamp}{'.db' if fmt == 'sqlite' else '.jsonl.gz'}", folder


def _prune(folder: Path, keep: int) -> list[Path]:
    dated = sorted(
        (p for p in folder.iterdir() if p.name.startswith(_PREFIX) and p.name.endswith((".db", ".jsonl.gz"))),
        key=lambda p: p.name,
        reverse=True,
    )
    gone = dated[keep:]
    for old in gone:
        old.unlink()
    return gone


@click.command()
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option(
    "--keep", type=click.IntRange(min=1), default=None, help="Keep only the newest N backups in the folder"
)
@click.option(
    "--format", "fmt", type=click.Choice(["auto", "sqlite", "jsonl"]), default="auto", show_default=True
)
@database_option
@errors
def backup(path: Path | None, keep: int | None, fmt: str, database_url: str | None) -> None:
    """Back up the database while it runs (a file, or a dated file in a folder)."""
    from rich.progress import Progress

    from ..store.engine.backup import dump, sqlite_backup, table_counts

    settings, db = open_database(database_url)
    if fmt == "auto":
        named_gz = path is not None and path.name.endswith(".gz")
        fmt = "sqlite" if db.is_sqlite and not named_gz else "jsonl"
    file, folder = _target(path, settings.home, fmt)
    if keep is not None and folder is None:
        raise click.UsageError("--keep needs a folder of dated backups, not a file")
    with Progress(transient=True) as bar:
        if fmt == "sqlite":
            task = bar.add_task(f"copying to {file.name}", total=None)
            pages = sqlite_backup(db.engine, file, progress=lambda n: bar.advance(task, n))
            what = f"{pages} pages"
        else:
            total = sum(table_counts(db.engine).values())
            task = bar.add_task(f"writing {file.name}", total=total)
            rows = dump(db.engine, file, progress=lambda n: bar.advance(task, n))
            what = f"{rows} rows"
    db.engine.dispose()
    click.echo(f"backed up {what} to {file}", err=True)
    if keep is not None and folder is not None:
        for old in _prune(folder, keep):
            click.echo(f"deleted the older backup {old.name}", err=True)
    click.echo(str(file))


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Restore into a database that already holds data")
@database_option
@errors
def restore(file: Path, force: bool, database_url: str | None) -> None:
    """Load a backup (either kind) into this database, and check its row counts."""
    from rich.progress import Progress

    from ..store.engine.backup import is_sqlite_file, load, restore_sqlite

    _, db = open_database(database_url)
    if is_sqlite_file(file):
        counts = restore_sqlite(db.engine, file, force=force)
        click.echo(f"restored {sum(counts.values())} rows from {file}", err=True)
        return
    with Progress(transient=True) as bar:
        task = bar.add_task(f"loading {file.name}", total=None)
        rows = load(db.engine, file, progress=lambda n: bar.advance(task, n), force=force)
    click.echo(f"restored {rows} rows from {file}", err=True)
