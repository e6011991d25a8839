"""The server's one settings object.

Precedence is fixed: an argument (``Settings(port=9000)`` or a CLI flag) beats a ``SIGHTLINE_*``
environment variable, which beats the default. Every setting is documented in the README's
settings table (a test keeps the two in step).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]

_DEV_SECRET = "sightline-development-secret-change-me"


def _home() -> Path:
    return Path(os.environ.get("SIGHTLINE_HOME") or ".")


class Settings(BaseSettings):
    """Settings of one Sightline server process."""

    model_config = SettingsConfigDict(env_prefix="SIGHTLINE_", extra="ignore")

    home: Path = Field(default_factory=_home, description="Folder for the default SQLite file")
    database_url: str = Field(default="", description="SQLAlchemy URL; default sqlite under home")
    redis_url: str | None = Field(default=None, description="Redis URL for the shared gateway cache")
    host: str = Field(default="127.0.0.1", description="Address `serve` listens on")
    port: int = Field(default=8000, ge=0, le=65535, description="Port `serve` listens on")
    workers: int = Field(default=1, ge=1, le=64, description="Server processes `serve` starts")
    environment: Literal["development", "production"] = Field(
        default="development", description="`production` refuses insecure defaults"
    )
    secret_key: str = Field(
        default=_DEV_SECRET,
        description="Signs feedback keys and sessions, encrypts provider keys",
    )
    upstream_url: str = Field(
        default="https://api.openai.com/v1", description="Model provider the gateway forwards to"
    )
    upstream_api_key: str | None = Field(default=None, description="Key for the upstream provider")
    upstream_timeout: float = Field(default=600.0, gt=0, description="Seconds to wait on the upstream")
    cache_ttl: int = Field(default=7 * 24 * 3600, ge=0, description="Seconds a cached response lives")
    max_body_bytes: int = Field(default=20 * 1024 * 1024, gt=0, description="Largest request body accepted")
    writer: Literal["auto", "process", "thread"] = Field(
        default="auto",
        description="Where `serve` runs the database writer: a process of its own, a thread, or `auto`",
    )
    write_batch_max: int = Field(default=5000, gt=0, description="Most records one write transaction takes")
    key_cache_seconds: float = Field(
        default=1.0, ge=0, description="How long a process trusts a looked-up API key"
    )
    functions_dir: Path | None = Field(default=None, description="Folder of custom_*.py pipeline functions")
    log_level: str = Field(default="info", description="Log level of `serve`")

    @model_validator(mode="after")
    def _defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.home / 'sightline.db').resolve()}"
        if self.environment == "production" and self.secret_key == _DEV_SECRET:
            raise ValueError(
                "SIGHTLINE_SECRET_KEY must be set in production; generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return self

    @property
    def writer_process(self) -> bool:
        """Whether ``serve`` runs the writer in a process of its own. ``auto``: when this process may
        run on more than one core. (On one core a writer process cannot run beside the server, and
        only adds the cost of sending it every write.)"""
        if self.writer != "auto":
            return self.writer == "process"
        cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
        return len(cores) > 1

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
