"""Which upstream a call goes to, without a database read on the hot path.

A project's providers (keys decrypted) and gateway settings are read once and kept for ``ttl``
seconds; after that the next request still gets the kept ones at once while a fresh copy is read
in the background, so a change made by the CLI or the admin pages applies within a few seconds.
A project without stored providers uses the server's ``upstream_url`` / ``upstream_api_key``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from ...errors import InvalidInput
from ...store import Database
from ...store.gateway.providers import GatewayConfig, ProviderKey, gateway_config
from .upstream import Target

__all__ = ["ProjectGateway", "ProviderDirectory", "provider_name"]

log = logging.getLogger(__name__)


def provider_name(base_url: str) -> str | None:
    """The provider a base URL belongs to, for pricing (``None`` when it cannot be told)."""
    if "api.openai.com" in base_url:
        return "openai"
    if "openai.azure.com" in base_url:
        return "azure"
    return None


@dataclass(frozen=True, slots=True)
class ProjectGateway:
    """A project's targets by id and name, its default target and its default cache mode."""

    by_key: dict[str, Target]
    default: Target
    cache_mode: str | None

    def target(self, selector: str | None) -> Target:
        """The target a request asks for (a provider id or name), or the default one."""
        if selector is None or selector == "":
            return self.default
        found = self.by_key.get(selector)
        if found is None:
            raise InvalidInput(f"no provider {selector!r} in this project", field="provider")
        return found


class ProviderDirectory:
    """Projects' gateway settings, kept in this process for a few seconds."""

    def __init__(
        self, db: Database, secret_key: str, upstream_url: str, upstream_api_key: str | None, ttl: float = 5.0
    ) -> None:
        self._db = db
        self._secret_key = secret_key
        self._ttl = ttl
        base = upstream_url.rstrip("/")
        self.fallback = Target(base, upstream_api_key, provider_name(base), None)
        self._kept: dict[int, tuple[ProjectGateway, float]] = {}
        self._loading: dict[int, asyncio.Task[ProjectGateway]] = {}

    async def project(self, project_id: int, selector: str | None = None) -> ProjectGateway:
        """The gateway settings of ``project_id`` (read from the database at most every ``ttl`` s).

        A ``selector`` (provider id or name) the kept copy does not know makes it read again at once
        (at most four times a second), so a provider added a moment ago can be picked straight away.
        """
        kept = self._kept.get(project_id)
        if kept is not None:
            project, loaded = kept
            age = time.monotonic() - loaded
            if selector and selector not in project.by_key and age > 0.25:
                return await self._fresh(project_id)
            if age > self._ttl and project_id not in self._loading:
                self._load(project_id)
            return project
        return await self._fresh(project_id)

    async def _fresh(self, project_id: int) -> ProjectGateway:
        task = self._loading.get(project_id) or self._load(project_id)
        return await asyncio.shield(task)

    def forget(self, project_id: int) -> None:
        """Read the project's settings again on its next request (they were just changed here)."""
        self._kept.pop(project_id, None)

    def _load(self, project_id: int) -> asyncio.Task[ProjectGateway]:
        task = asyncio.get_running_loop().create_task(self._read(project_id))
        self._loading[project_id] = task
        task.add_done_callback(lambda t: self._loaded(project_id, t))
        return task

    def _loaded(self, project_id: int, task: asyncio.Task[Any]) -> None:
        self._loading.pop(project_id, None)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None and project_id in self._kept:
            log.warning("re-reading the providers of project %d failed: %s", project_id, error)

    async def _read(self, project_id: int) -> ProjectGateway:
        config = await asyncio.to_thread(self._read_config, project_id)
        project = self._build(config)
        self._kept[project_id] = (project, time.monotonic())
        return project

    def _read_config(self, project_id: int) -> GatewayConfig:
        with self._db.read() as conn:
            return gateway_config(conn, project_id, self._secret_key)

    def _build(self, config: GatewayConfig) -> ProjectGateway:
        by_key: dict[str, Target] = {}
        default = self.fallback
        for p in config.providers:
            target = _target(p)
            by_key[str(p.id)] = target
            by_key[p.name] = target
            if p.id == config.default_id:
                default = target
        return ProjectGateway(by_key, default, config.cache_mode)


def _target(p: ProviderKey) -> Target:
    return Target(p.base_url.rstrip("/"), p.api_key, provider_name(p.base_url) or p.name, p.id)
