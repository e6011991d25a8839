"""``gentrace.init(...)``: where the runs go, read by every Pipeline and OpenAI made after it.

gentrace's API configures the process once (``init``), so this module holds that one configuration;
nothing else here is global. Precedence: ``init`` arguments > environment (``GENTRACE_API_KEY`` or
``SIGHTLINE_API_KEY``; ``SIGHTLINE_SERVER_URL``) > the Sightline SDK's defaults.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from sightline.sdk import SightlineConfig

__all__ = ["deinit", "init", "sightline_config"]

_NO_KEY = (
    "No Gentrace API key available. Please use init() to set the API key "
    "(the Sightline API key; GENTRACE_API_KEY or SIGHTLINE_API_KEY also work)."
)


@dataclass(slots=True)
class _Settings:
    api_key: str | None = None
    server_url: str | None = None


_settings = _Settings()
_lock = threading.Lock()


def _server_url(host: str) -> str:
    """The Sightline server of a gentrace host (``http://HOST:PORT/api``, as gentrace takes it)."""
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"Invalid Gentrace base path: {host!r} is not an http(s) URL")
    if parts.path.rstrip("/") and not parts.path.rstrip("/").endswith("/api"):
        raise ValueError('Invalid Gentrace base path: Gentrace URL path must end in "/api".')
    path = parts.path.rstrip("/").removesuffix("/api")
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def init(
    api_key: str | None = None,
    host: str | None = None,
    branch: str | None = None,
    commit: str | None = None,
    log_level: str | None = None,
    run_name: str | None = None,
    result_name: str | None = None,
) -> None:
    """Set the API key (a Sightline key) and the server (``host="http://HOST:PORT/api"``) for what follows.

    ``branch``, ``commit``, ``run_name`` and ``result_name`` (gentrace's test-result labels) are accepted
    and not used; ``log_level`` is ``"info"`` or ``"warn"``, as gentrace checks it.
    """
    key = api_key or os.environ.get("GENTRACE_API_KEY") or os.environ.get("SIGHTLINE_API_KEY")
    if not key:
        raise ValueError(
            "Gentrace API key was provided neither by the `api_key` param nor by the "
            "`GENTRACE_API_KEY` (or `SIGHTLINE_API_KEY`) env variable."
        )
    if log_level is not None and log_level not in ("info", "warn"):
        raise ValueError(f"Invalid log level: {log_level}")
    server = _server_url(host) if host else None
    with _lock:
        _settings.api_key, _settings.server_url = key, server


def deinit() -> None:
    """Forget what :func:`init` set."""
    with _lock:
        _settings.api_key = _settings.server_url = None


def sightline_config(api_key: str | None = None, host: str | None = None) -> SightlineConfig:
    """The Sightline SDK configuration of a client or pipeline made now (``ValueError`` without a key)."""
    with _lock:
        key = api_key or _settings.api_key
        server = _server_url(host) if host else _settings.server_url
    key = key or os.environ.get("GENTRACE_API_KEY") or os.environ.get("SIGHTLINE_API_KEY")
    if not key:
        raise ValueError(_NO_KEY)
    return SightlineConfig(api_key=key, server_url=server)
