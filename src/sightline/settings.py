"""The server's one settings object.

Precedence is fixed: an argument (``Settings(port=9000)`` or a CLI flag) beats a ``SIGHTLINE_*``
environment variable, which beats the default. Every setting is documented in the README's
settings table (a test keeps the two in step).
"""

from __future__ import annotations

import logging
import os
import secrets
import ssl
from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .schema import MAX_METADATA_KEYS

__all__ = ["SECRET_FILE", "Settings", "load_or_create_secret"]

log = logging.getLogger(__name__)

SECRET_FILE = "sightline.secret"
_MIN_SECRET = 32


def _home() -> Path:
    """One per-user place (``$XDG_DATA_HOME/sightline``, else ``~/.local/share/sightline``), so every
    command finds the same database whichever folder it runs in; ``SIGHTLINE_HOME`` overrides it."""
    given = os.environ.get("SIGHTLINE_HOME")
    if given:
        return Path(given)
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "sightline"


def load_or_create_secret(path: Path) -> str:
    """The secret kept in ``path``; on first use, a random one written there (mode 0600).

    Several processes of one install may start at once: each writes its candidate to a file of its
    own and links it into place, which succeeds for exactly one of them (``link`` never replaces a
    file); the others read the winner's. Nobody ever reads a half-written secret.
    """
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(candidate, path)
            log.info("generated a secret key in %s (keep it: sessions and provider keys need it)", path)
        except FileExistsError:
            pass  # another process won the race: use its secret
    finally:
        candidate.unlink(missing_ok=True)
    return _read_secret(path)


def _read_secret(path: Path) -> str:
    secret = path.read_text().strip()
    if len(secret) < _MIN_SECRET:
        raise ValueError(
            f"{path} holds a secret shorter than {_MIN_SECRET} characters: remove it to make a new one"
        )
    if path.stat().st_mode & 0o077:
        log.warning("%s can be read by other users of this machine: chmod 600 it", path)
    return secret


class Settings(BaseSettings):
    """Settings of one Sightline server process."""

    # A .env file in the working folder (as the Compose deployment keeps one) is read too, below the
    # environment: argument > environment variable > .env > default.
    model_config = SettingsConfigDict(
        env_prefix="SIGHTLINE_", extra="ignore", env_file=".env", env_file_encoding="utf-8"
    )

    home: Path = Field(default_factory=_home, description="Folder of the default SQLite file and the secret")
    database_url: str = Field(default="", description="SQLAlchemy URL; default sqlite under home")
    redis_url: str | None = Field(default=None, description="Redis URL for the shared gateway cache")
    host: str = Field(default="127.0.0.1", description="Address `serve` listens on")
    port: int = Field(default=8000, ge=0, le=65535, description="Port `serve` listens on")
    workers: int = Field(default=1, ge=1, le=64, description="Server processes `serve` starts")
    environment: Literal["development", "production"] = Field(
        default="development", description="`production` refuses insecure defaults"
    )
    secret_key: str = Field(
        default="",
        repr=False,
        description="Signs sessions and feedback keys, encrypts provider keys; empty: generated once "
        "and kept in `sightline.secret` under home (required, 32+ characters, in production)",
    )
    secure_cookies: bool = Field(
        default=False,
        description="Always mark the session cookie `Secure` (behind a proxy that ends TLS); "
        "otherwise only when the request came over HTTPS",
    )
    _secret_generated: bool = PrivateAttr(default=False)
    upstream_url: str = Field(
        default="https://api.openai.com/v1", description="Model provider the gateway forwards to"
    )
    upstream_api_key: str | None = Field(default=None, description="Key for the upstream provider")
    upstream_timeout: float = Field(default=600.0, gt=0, description="Seconds to wait on the upstream")
    upstream_ca_bundle: Path | None = Field(
        default=None,
        description="PEM file of the certificate authorities the gateway trusts for providers and "
        "proxies, instead of the system's",
    )
    upstream_max_connections: int = Field(
        default=1000,
        ge=1,
        description="Most connections the gateway opens to one provider origin; more requests wait "
        "their turn (up to 30 s)",
    )
    upstream_trust_env: bool = Field(
        default=True,
        description="Whether the gateway sends provider calls through the proxies named by "
        "HTTPS_PROXY / HTTP_PROXY / ALL_PROXY, except hosts in NO_PROXY",
    )
    cache_ttl: int = Field(default=7 * 24 * 3600, ge=0, description="Seconds a cached response lives")
    max_body_bytes: int = Field(default=20 * 1024 * 1024, gt=0, description="Largest request body accepted")
    max_ingest_items: int = Field(
        default=10_000, gt=0, description="Most items one `/api/ingest` request may hold (413 beyond)"
    )
    max_metadata_keys: int = Field(
        default=MAX_METADATA_KEYS,
        gt=0,
        description="Most metadata keys of one generation or run, each tag counting as one",
    )
    writer: Literal["auto", "process", "thread"] = Field(
        default="auto",
        description="Where `serve` runs the database writer: a process of its own, a thread, or `auto`",
    )
    write_batch_max: int = Field(default=5000, gt=0, description="Most records one write transaction takes")
    key_cache_seconds: float = Field(
        default=1.0,
        ge=0,
        description="How long a process trusts a looked-up API key or refuses an unknown one",
    )
    functions_dir: Path | None = Field(default=None, description="Folder of custom_*.py pipeline functions")
    otlp_max_spans: int = Field(
        default=10_000, gt=0, le=1_000_000, description="Most spans one OTLP export may hold (413 beyond)"
    )
    pipeline_max_depth: int = Field(default=16, ge=1, le=32, description="Most nested calls in a pipeline")
    pipeline_max_calls: int = Field(default=100, ge=1, le=10_000, description="Most calls one pipeline makes")
    pipeline_function_timeout: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="Seconds one custom function may run (its worker is then killed)",
    )
    pipeline_cache_seconds: float = Field(
        default=1.0, ge=0, le=3600, description="Seconds a process reuses a checked pipeline (0: never)"
    )
    pipeline_timeout: float = Field(
        default=120.0, gt=0, le=86_400, description="Seconds one pipeline run may take"
    )
    log_level: str = Field(default="info", description="Log level of `serve`")
    jobs_in_serve: bool = Field(
        default=True, description="Whether each `serve` process also runs background jobs (else: `worker`)"
    )
    job_concurrency: int = Field(default=4, ge=1, le=256, description="Jobs one process runs at once")
    job_poll_seconds: float = Field(default=1.0, gt=0, description="Seconds between looks for due jobs")
    job_lease_seconds: float = Field(
        default=60.0, gt=0, description="Seconds a claimed job stays a worker's without renewal"
    )
    job_max_attempts: int = Field(default=5, ge=1, le=100, description="Attempts of a job before it fails")
    job_backoff_seconds: float = Field(
        default=10.0, ge=0, description="Seconds before a failed job's first retry (doubling after)"
    )
    job_keep_days: float = Field(default=7.0, gt=0, description="Days a finished job is kept")
    eval_poll_seconds: float = Field(
        default=2.0, gt=0, le=3600, description="Seconds between looks for new generations to evaluate online"
    )
    eval_batch: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="Generations one evaluator takes per batch of online evaluation",
    )
    eval_concurrency: int = Field(
        default=8, ge=1, le=256, description="LLM judge or function calls one evaluator makes at once"
    )
    limits_fail_open: bool = Field(
        default=True,
        description="When rate limit counters cannot be reached (Redis down): let requests through",
    )
    retention_seconds: float = Field(
        default=3600.0, gt=0, description="Seconds between runs of the retention policies"
    )
    cache_purge_seconds: float = Field(
        default=600.0, gt=0, description="Seconds between purges of expired gateway cache entries"
    )
    query_timeout: float = Field(
        default=5.0, gt=0, le=3600, description="Seconds a read query may run before it is cancelled (503)"
    )

    @field_validator("upstream_ca_bundle", mode="before")
    @classmethod
    def _ca_bundle(cls, value: object) -> object:
        # Read now, so that a wrong path stops the server at start rather than failing every call.
        if value is None or value == "":
            return None
        path = Path(str(value))
        try:
            ssl.create_default_context(cafile=str(path))
        except ssl.SSLError:
            raise ValueError(
                f"SIGHTLINE_UPSTREAM_CA_BUNDLE names {path}, which holds no PEM certificate"
            ) from None
        except OSError as exc:
            raise ValueError(
                f"SIGHTLINE_UPSTREAM_CA_BUNDLE names {path}, which cannot be read ({exc.strerror})"
            ) from None
        return path

    @model_validator(mode="after")
    def _defaults(self) -> Settings:
        if not self.secret_key and self.environment != "production":  # a secret is kept there
            try:
                self.home.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ValueError(
                    f"cannot keep a generated secret key in {self.home / SECRET_FILE} ({exc.strerror}): set "
                    "SIGHTLINE_HOME to a folder Sightline may write, or SIGHTLINE_SECRET_KEY"
                ) from None
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.home / 'sightline.db').resolve()}"
        how = "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        if self.environment == "production":
            # Several hosts of one deployment must share the secret: a file on one host would
            # silently split sessions and leave other hosts unable to read provider keys.
            if not self.secret_key:
                raise ValueError(f"SIGHTLINE_SECRET_KEY must be set in production; {how}")
            if len(self.secret_key) < _MIN_SECRET:
                raise ValueError(
                    f"SIGHTLINE_SECRET_KEY must have at least {_MIN_SECRET} characters in production "
                    f"(it has {len(self.secret_key)}); {how}"
                )
        if not self.secret_key:
            path = self.home / SECRET_FILE
            try:
                self.secret_key = load_or_create_secret(path)
            except OSError as exc:
                raise ValueError(
                    f"cannot keep a generated secret key in {path} ({exc.strerror}): set "
                    "SIGHTLINE_HOME to a folder Sightline may write, or SIGHTLINE_SECRET_KEY"
                ) from None
            self._secret_generated = True
        return self

    @property
    def secret_generated(self) -> bool:
        """Whether the secret was generated by Sightline (none was given)."""
        return self._secret_generated

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
