"""Create or bring a database up to the newest schema with Alembic."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect

__all__ = ["alembic_config", "migrate", "needs_migration"]

_HERE = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    """The Alembic configuration for ``url`` (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(engine: Engine) -> None:
    """Apply every migration not yet applied. Safe to run on every start."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def needs_migration(engine: Engine) -> bool:
    """Whether the database lacks the schema entirely (a fresh file)."""
    return not inspect(engine).has_table("alembic_version")
