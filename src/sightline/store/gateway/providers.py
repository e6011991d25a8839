"""Upstream providers of a project (base URL + API key) and the project's gateway settings.

A provider's API key is encrypted at rest with Fernet, under a key derived (HKDF-SHA256) from the
server's ``secret_key``; it is decrypted only into a :class:`ProviderKey` for the gateway, and no
listing, log line or ``repr`` ever shows it. Changing ``secret_key`` makes stored keys unreadable:
the gateway then refuses to use them with a message that says so.

The first provider added to a project becomes its default. These writes are rare (CLI, admin
pages), so they run in their own short transactions rather than through the ingest writer.
"""

from __future__ import annotations

import base64
import functools
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Connection, delete, select, update

from ...errors import InvalidInput, NotFound, Unavailable
from .. import tables as t
from ..engine.dialect import upsert

__all__ = [
    "CACHE_MODES",
    "GatewayConfig",
    "ProviderKey",
    "add_provider",
    "default_provider_id",
    "gateway_config",
    "list_providers",
    "remove_provider",
    "set_cache_mode",
    "set_default_provider",
]

CACHE_MODES = ("use", "skip")


def _now_us() -> int:
    return time.time_ns() // 1000


@functools.lru_cache(maxsize=8)
def _fernet(secret_key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"sightline provider keys").derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def _encrypt(api_key: str, secret_key: str) -> str:
    return _fernet(secret_key).encrypt(api_key.encode()).decode()


def _decrypt(token: str, secret_key: str, provider: str) -> str:
    try:
        return _fernet(secret_key).decrypt(token.encode()).decode()
    except InvalidToken:
        raise Unavailable(
            f"the API key of provider {provider!r} cannot be decrypted: SIGHTLINE_SECRET_KEY is not the one "
            "it was stored with (add the provider again, or restore the old secret key)"
        ) from None


@dataclass(frozen=True, slots=True)
class ProviderKey:
    """A provider with its decrypted API key, for the gateway only (the key stays out of ``repr``)."""

    id: int
    name: str
    base_url: str
    api_key: str | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """What the gateway needs of one project: its providers, the default one, its cache mode."""

    providers: tuple[ProviderKey, ...]
    default_id: int | None
    cache_mode: str | None


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 64 or not all(c.isalnum() or c in "-_." for c in name) or name.isdigit():
        raise InvalidInput(
            f"provider name must be 1-64 letters, digits, '-', '_' or '.' (not only digits); got {name!r}",
            field="name",
        )
    return name


def _check_url(base_url: str) -> str:
    base_url = base_url.strip().rstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise InvalidInput(
            f"base URL must be an http(s) URL such as https://api.openai.com/v1; got {base_url!r}",
            field="base_url",
        )
    return base_url


def _settings_row(conn: Connection, project_id: int) -> Any:
    s = t.gateway_settings
    return conn.execute(select(s).where(s.c.project_id == project_id)).first()


def default_provider_id(conn: Connection, project_id: int) -> int | None:
    """The id of the project's default provider, if it has one."""
    row = _settings_row(conn, project_id)
    return None if row is None or row.default_provider_id is None else int(row.default_provider_id)


def _set_settings(conn: Connection, project_id: int, **values: Any) -> None:
    row = _settings_row(conn, project_id)
    current = dict(row._mapping) if row is not None else {"default_provider_id": None, "cache_mode": None}
    current.update(values, project_id=project_id)
    upsert(conn, t.gateway_settings, [current], update=["default_provider_id", "cache_mode"])


def add_provider(
    conn: Connection, project_id: int, name: str, base_url: str, api_key: str | None, secret_key: str
) -> int:
    """Store a provider for ``project_id`` (its key encrypted) and answer its id.

    The project's first provider becomes its default.
    """
    name, base_url = _check_name(name), _check_url(base_url)
    p = t.providers
    if conn.scalar(select(p.c.id).where(p.c.project_id == project_id, p.c.name == name)) is not None:
        raise InvalidInput(
            f"the project already has a provider named {name!r}; remove it first", field="name"
        )
    encrypted = _encrypt(api_key, secret_key) if api_key else None
    conn.execute(
        p.insert().values(
            project_id=project_id,
            name=name,
            base_url=base_url,
            api_key_encrypted=encrypted,
            created_us=_now_us(),
        )
    )
    provider_id = conn.scalar(select(p.c.id).where(p.c.project_id == project_id, p.c.name == name))
    assert provider_id is not None
    row = _settings_row(conn, project_id)
    if row is None or row.default_provider_id is None:
        _set_settings(conn, project_id, default_provider_id=provider_id)
    return int(provider_id)


def list_providers(conn: Connection, project_id: int) -> list[dict[str, Any]]:
    """The providers of a project: id, name, base_url, is_default, created (µs). Never their keys."""
    p = t.providers
    row = _settings_row(conn, project_id)
    default = row.default_provider_id if row is not None else None
    q = select(p.c.id, p.c.name, p.c.base_url, p.c.created_us).where(p.c.project_id == project_id)
    return [
        {
            "id": r.id,
            "name": r.name,
            "base_url": r.base_url,
            "is_default": r.id == default,
            "created": r.created_us,
        }
        for r in conn.execute(q.order_by(p.c.id))
    ]


def _require(conn: Connection, project_id: int, provider_id: int) -> None:
    p = t.providers
    found = conn.scalar(select(p.c.id).where(p.c.project_id == project_id, p.c.id == provider_id))
    if found is None:
        raise NotFound(f"no provider {provider_id} in this project")


def remove_provider(conn: Connection, project_id: int, provider_id: int) -> None:
    """Delete a provider (and its key). When it was the default, the project has none until one is set."""
    _require(conn, project_id, provider_id)
    conn.execute(delete(t.providers).where(t.providers.c.id == provider_id))
    s = t.gateway_settings
    conn.execute(
        update(s)
        .where(s.c.project_id == project_id, s.c.default_provider_id == provider_id)
        .values(default_provider_id=None)
    )


def set_default_provider(conn: Connection, project_id: int, provider_id: int | None) -> None:
    """Make ``provider_id`` the project's default provider (``None``: the server's upstream settings)."""
    if provider_id is not None:
        _require(conn, project_id, provider_id)
    _set_settings(conn, project_id, default_provider_id=provider_id)


def set_cache_mode(conn: Connection, project_id: int, mode: str | None) -> None:
    """The project's default cache mode: ``use``, ``skip``, or ``None`` for the gateway's default."""
    if mode is not None and mode not in CACHE_MODES:
        raise InvalidInput(f"cache mode must be one of {', '.join(CACHE_MODES)}; got {mode!r}", field="mode")
    _set_settings(conn, project_id, cache_mode=mode)


def gateway_config(conn: Connection, project_id: int, secret_key: str) -> GatewayConfig:
    """A project's providers with their keys decrypted, its default provider and cache mode."""
    p = t.providers
    rows = conn.execute(
        select(p.c.id, p.c.name, p.c.base_url, p.c.api_key_encrypted)
        .where(p.c.project_id == project_id)
        .order_by(p.c.id)
    ).all()
    keys = tuple(
        ProviderKey(
            r.id,
            r.name,
            r.base_url,
            _decrypt(r.api_key_encrypted, secret_key, r.name) if r.api_key_encrypted else None,
        )
        for r in rows
    )
    settings = _settings_row(conn, project_id)
    if settings is None:
        return GatewayConfig(keys, None, None)
    return GatewayConfig(keys, settings.default_provider_id, settings.cache_mode)
