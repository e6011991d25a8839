"""Configuration of the SDK: one frozen object, argument > environment variable > default.

=======================  ==============================  ==========================================
Setting                  Environment variable            Default
=======================  ==============================  ==========================================
api_key                  SIGHTLINE_API_KEY               none: the client records nothing, warns once
server_url               SIGHTLINE_SERVER_URL            http://127.0.0.1:8000
prompt_template_name     SIGHTLINE_PROMPT_TEMPLATE_NAME  none
allow_unnamed_prompts    SIGHTLINE_ALLOW_UNNAMED_PROMPTS true
redact_pii               SIGHTLINE_REDACT_PII            false
spool_dir                SIGHTLINE_SPOOL_DIR             none: what cannot be sent at exit is lost
=======================  ==============================  ==========================================

The remaining fields tune the background exporter and have no environment variable. Clients whose
exporter settings are equal (same server, key, batching, interval…: one :class:`Destination`) share
one exporter; clients with different settings each get their own, so no setting is merged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace

__all__ = ["DEFAULT_SERVER_URL", "Destination", "SightlineConfig"]

DEFAULT_SERVER_URL = "http://127.0.0.1:8000"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _env_bool(name: str, value: bool | None, default: bool) -> bool:
    if value is not None:
        return value
    raw = os.environ.get(name)
    if raw is None:
        return default
    if raw.strip().lower() in _TRUE:
        return True
    if raw.strip().lower() in _FALSE:
        return False
    raise ValueError(f"{name}={raw!r}: expected true or false")


@dataclass(frozen=True, slots=True)
class Destination:
    """Where records go and how: everything one exporter needs. Equal destinations share an exporter."""

    server_url: str
    api_key: str = field(repr=False)
    redact_pii: bool = False
    pii_region: str = "US"
    max_batch_items: int = 1000
    max_batch_bytes: int = 2_000_000
    request_timeout: float = 10.0
    max_retry_seconds: float = 120.0
    flush_interval: float = 0.5
    max_queue_size: int = 20_000
    exit_timeout: float = 5.0
    compress: bool | None = None
    """gzip request bodies: None decides by the server's address (not when it is on this machine)."""
    spool_dir: str | None = None
    """Folder keeping what could not be sent (an absolute path), or None: no spool."""
    spool_max_bytes: int = 100_000_000
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Every record looks its exporter up by destination: hash the fourteen fields once, not each time.
        values = tuple(getattr(self, f.name) for f in fields(self) if f.compare)
        object.__setattr__(self, "_hash", hash(values))

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True, slots=True)
class SightlineConfig:
    """How a :class:`sightline.Client` records its calls.

    Unset fields (``None``) are read from ``SIGHTLINE_*`` environment variables when the client is
    built; see the module docstring for the table.
    """

    api_key: str | None = field(default=None, repr=False)
    server_url: str | None = None
    prompt_template_name: str | None = None
    allow_unnamed_prompts: bool | None = None
    redact_pii: bool | None = None
    pii_region: str = "US"
    stream_usage: bool = True
    """Ask the upstream for usage on streams (``stream_options.include_usage``) so they are priced."""
    enabled: bool = True
    flush_interval: float = 0.5
    """Seconds a record may wait before it is sent (sooner when a batch is full)."""
    max_batch_items: int = 1000
    max_batch_bytes: int = 2_000_000
    max_queue_size: int = 20_000
    request_timeout: float = 10.0
    max_retry_seconds: float = 120.0
    exit_timeout: float = 5.0
    """Seconds the exit of the process may wait for pending records to be sent."""
    compress: bool | None = None
    """gzip what is sent: None (default) compresses unless the server is on this machine, where it
    costs CPU and saves nothing."""
    prompt_cache_ttl: float = 60.0
    """Seconds a prompt fetched with ``client.prompts.get`` is served from the process's cache before it
    is fetched again (in the background; the cached one is served meanwhile, and while the server is down)."""
    prompt_fetch_timeout: float = 5.0
    """Seconds the first fetch of a prompt (nothing cached yet) may wait for the server."""
    spool_dir: str | os.PathLike[str] | None = None
    """Folder where records that could not be delivered are kept, to be sent by the next process that
    records to the same server with the same key (and by this one, once the server answers again). None
    (default): what is not delivered before the exit deadline, or within ``max_retry_seconds``, is lost."""
    spool_max_bytes: int = 100_000_000
    """Size the spool folder may reach; past it the oldest spooled records are dropped (and counted)."""

    def __post_init__(self) -> None:
        for name in (
            "flush_interval",
            "request_timeout",
            "exit_timeout",
            "max_retry_seconds",
            "prompt_cache_ttl",
            "prompt_fetch_timeout",
        ):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise ValueError(f"SightlineConfig.{name} must be a number >= 0, got {value!r}")
        for name in ("max_batch_items", "max_batch_bytes", "max_queue_size", "spool_max_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"SightlineConfig.{name} must be an integer >= 1, got {value!r}")
        if self.max_batch_items > 10_000:
            raise ValueError("SightlineConfig.max_batch_items must be at most 10000 (the server's limit)")
        if self.server_url is not None and not self.server_url.startswith(("http://", "https://")):
            raise ValueError(
                f"SightlineConfig.server_url must start with http:// or https://, got {self.server_url!r}"
            )

    def resolved(self) -> SightlineConfig:
        """This configuration with every unset field taken from the environment or its default."""
        server_url = self.server_url or os.environ.get("SIGHTLINE_SERVER_URL") or DEFAULT_SERVER_URL
        spool_dir = self.spool_dir or os.environ.get("SIGHTLINE_SPOOL_DIR") or None
        return replace(
            self,
            api_key=self.api_key or os.environ.get("SIGHTLINE_API_KEY") or None,
            server_url=server_url.rstrip("/"),
            prompt_template_name=self.prompt_template_name
            or os.environ.get("SIGHTLINE_PROMPT_TEMPLATE_NAME")
            or None,
            allow_unnamed_prompts=_env_bool(
                "SIGHTLINE_ALLOW_UNNAMED_PROMPTS", self.allow_unnamed_prompts, True
            ),
            redact_pii=_env_bool("SIGHTLINE_REDACT_PII", self.redact_pii, False),
            # Absolute: a later os.chdir() must not move the spool.
            spool_dir=os.path.abspath(os.path.expanduser(spool_dir)) if spool_dir else None,
        )

    @property
    def records(self) -> bool:
        """Whether a client with this (resolved) configuration records anything."""
        return self.enabled and bool(self.api_key)

    def destination(self) -> Destination:
        """The exporter destination of this (resolved) configuration."""
        if not self.api_key or not self.server_url:
            raise ValueError("a destination needs an api_key and a server_url")
        return Destination(
            server_url=self.server_url,
            api_key=self.api_key,
            redact_pii=bool(self.redact_pii),
            pii_region=self.pii_region,
            max_batch_items=self.max_batch_items,
            max_batch_bytes=self.max_batch_bytes,
            request_timeout=self.request_timeout,
            max_retry_seconds=self.max_retry_seconds,
            flush_interval=self.flush_interval,
            max_queue_size=self.max_queue_size,
            exit_timeout=self.exit_timeout,
            compress=self.compress,
            spool_dir=os.fspath(self.spool_dir) if self.spool_dir else None,
            spool_max_bytes=self.spool_max_bytes,
        )
