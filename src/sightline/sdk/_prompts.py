"""Managed prompts fetched from the Sightline server: ``client.prompts.get("name", label="production")``.

The prompt comes back with its template (text or chat messages), model and parameters. Its
:meth:`Prompt.messages` (and :meth:`Prompt.render` for a text prompt) fill the arguments and feed
``chat.completions.create`` (or ``completions.create``); the generation is then recorded under the
prompt's name, with its template and the arguments kept apart, so its ``template.version`` is the
prompt's ``template_version`` (the one content hash of :mod:`sightline.templating`)::

    prompt = client.prompts.get("greet", label="production")
    client.chat.completions.create(**prompt.request(name="Ann"))   # model, messages, parameters

Fetched prompts are cached in the process, per server and API key, for ``prompt_cache_ttl`` seconds:

* a warm hit is a dict lookup and a clock read (``bench/bench_prompts.py``);
* an expired entry is served as it is while one background thread fetches it again, so no call
  waits for the server once a prompt was fetched; when the server is unreachable the stale prompt
  keeps being served and the fetch is tried again after at most ``prompt_cache_ttl`` (capped at 5 s);
* a cold entry (never fetched) costs one request, bounded by ``prompt_fetch_timeout``; concurrent
  callers of the same prompt wait for that one request rather than each sending their own.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast
from urllib.parse import quote

import httpx

from sightline import templating
from sightline.errors import InvalidInput, NotFound, Unavailable
from sightline.sdk._config import SightlineConfig
from sightline.sdk._guard import logger
from sightline.sdk._params import InvalidParams
from sightline.sdk._templates import TemplateChat, TemplateInfo, TemplateText

__all__ = ["AsyncPrompts", "Prompt", "PromptChat", "PromptText", "Prompts"]

T = TypeVar("T")
R = TypeVar("R")
_RETRY_CAP = 5.0  # seconds between fetches of a stale prompt while the server does not answer
_now = time.monotonic


class PromptChat(TemplateChat):
    """Messages rendered from a managed prompt: a plain list of ``{role, content}`` to any client,
    and to a Sightline client the generation is recorded under the prompt with its template."""

    def __init__(self, rendered: list[dict[str, Any]], info: TemplateInfo) -> None:
        super().__init__(rendered, info.params)
        self._info = info

    def render(self) -> list[Any]:
        return list(self)

    def info(self) -> TemplateInfo:
        return self._info


class PromptText(TemplateText):
    """Text rendered from a managed prompt: the rendered text as a ``str``, recorded under the prompt
    when given to ``completions.create(prompt=...)`` of a Sightline client."""

    _info: TemplateInfo

    def __new__(cls, rendered: str, info: TemplateInfo) -> PromptText:
        self = cast(PromptText, super().__new__(cls, rendered, info.params))
        self._info = info
        return self

    def render(self) -> str:
        return str.__str__(self)

    def info(self) -> TemplateInfo:
        return self._info


class Prompt:
    """One version of a managed prompt, as the server gave it."""

    __slots__ = (
        "args",
        "chat",
        "description",
        "labels",
        "model",
        "name",
        "parameters",
        "template",
        "template_version",
        "version",
    )

    def __init__(self, wire: Mapping[str, Any]) -> None:
        self.name: str = wire["name"]
        self.version: int | None = wire.get("version")
        self.template_version: str = wire["templateVersion"]
        self.template: str | None = wire.get("template")
        self.chat: list[dict[str, Any]] | None = wire.get("messages")
        self.args: list[str] = list(wire.get("args") or [])
        self.model: str | None = wire.get("model")
        self.parameters: dict[str, Any] = dict(wire.get("parameters") or {})
        self.description: str | None = wire.get("description")
        self.labels: list[str] = list(wire.get("labels") or [])

    def __repr__(self) -> str:
        return f"Prompt(name={self.name!r}, version={self.version!r}, args={self.args!r})"

    def _info(self, args: dict[str, Any]) -> TemplateInfo:
        return TemplateInfo(self.name, chat=self.chat, text=self.template, params=args)

    def _check(self, args: dict[str, Any]) -> None:
        if self.version is None:  # only recorded, never checked as a managed one: render as recorded
            return
        try:
            templating.check_args(self.args, args)  # the messages the server's rendering gives
        except templating.TemplateError as exc:
            raise InvalidParams(exc.message, field=exc.field) from None

    def render(self, **args: Any) -> PromptText:
        """The text prompt filled with ``args`` (exactly its arguments: a missing or unknown one is
        an :class:`~sightline.errors.InvalidInput` naming it). A chat prompt has :meth:`messages`."""
        if self.template is None:
            raise InvalidInput(
                f"prompt {self.name!r} is chat messages: use .messages(**args)", field="template"
            )
        self._check(args)
        return PromptText(_filled(templating.render_text, self.template, args), self._info(args))

    def messages(self, **args: Any) -> PromptChat:
        """The messages to send, filled with ``args``: a chat prompt's, or a text prompt as one user
        message. Give them to ``chat.completions.create(messages=...)``."""
        self._check(args)
        if self.chat is None:
            assert self.template is not None
            rendered = [{"role": "user", "content": _filled(templating.render_text, self.template, args)}]
        else:
            rendered = _filled(templating.render_chat, self.chat, args)
        return PromptChat(rendered, self._info(args))

    def request(self, **args: Any) -> dict[str, Any]:
        """Keyword arguments for ``chat.completions.create``: the prompt's model (when it has one), its
        messages filled with ``args`` and its parameters (``maxTokens`` → ``max_tokens``, ``jsonMode``
        → ``response_format``...)."""
        kwargs = templating.call_parameters(self.parameters)
        if self.model:
            kwargs["model"] = self.model
        kwargs["messages"] = self.messages(**args)
        return kwargs


def _filled(render: Callable[[T, dict[str, Any]], R], template: T, args: dict[str, Any]) -> R:
    # A template only recorded was never checked like a managed one: its rendering errors are the
    # same InvalidParams as a managed prompt's.
    try:
        return render(template, args)
    except templating.TemplateError as exc:
        raise InvalidParams(exc.message, field=exc.field) from None


class _Entry:
    __slots__ = ("expires", "prompt", "refreshing")

    def __init__(self, prompt: Prompt, expires: float) -> None:
        self.prompt = prompt
        self.expires = expires
        self.refreshing = False


class _Store:
    """The cached prompts of one server and API key, shared by every client that uses them."""

    def __init__(self, server_url: str, api_key: str, timeout: float) -> None:
        self.server_url = server_url
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._timeout = timeout
        self.entries: dict[tuple[str, str | None, str | None], _Entry] = {}
        self._lock = threading.Lock()
        self._fetching: dict[tuple[str, str | None, str | None], threading.Lock] = {}
        self._http: httpx.Client | None = None

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(timeout=self._timeout, headers=self._headers)
        return self._http

    def fetch(self, key: tuple[str, str | None, str | None]) -> Prompt:
        """One request for the prompt of ``key``: :class:`NotFound`, or :class:`Unavailable` when the
        server cannot answer."""
        name, label, version = key
        params = (
            {"label": label} if label is not None else {"version": version} if version is not None else {}
        )
        url = f"{self.server_url}/api/prompts/{quote(name, safe='')}"
        try:
            response = self._client().get(url, params=params)
        except httpx.HTTPError as exc:
            raise Unavailable(
                f"prompt {name!r}: the Sightline server did not answer ({type(exc).__name__})"
            ) from None
        if response.status_code == 404:
            raise NotFound(f"prompt {name!r}: {_message(response)}", field="name")
        if response.status_code >= 500 or response.status_code == 429:
            raise Unavailable(f"prompt {name!r}: the Sightline server answered {response.status_code}")
        if response.status_code >= 400:
            raise InvalidInput(f"prompt {name!r}: {_message(response)}", field="name")
        return Prompt(response.json())

    def cold(self, key: tuple[str, str | None, str | None], ttl: float) -> Prompt:
        """The prompt of ``key`` when it is not cached: one request (callers of the same key wait for it)."""
        with self._lock:
            gate = self._fetching.setdefault(key, threading.Lock())
        with gate:
            entry = self.entries.get(key)
            if entry is not None:  # another caller fetched it meanwhile
                return entry.prompt
            prompt = self.fetch(key)
            self.entries[key] = _Entry(prompt, _now() + ttl)
            return prompt

    def refresh(self, key: tuple[str, str | None, str | None], entry: _Entry, ttl: float) -> None:
        """Fetch ``key`` again in a background thread (one at a time); the stale entry is served meanwhile."""
        with self._lock:
            if entry.refreshing:
                return
            entry.refreshing = True
        threading.Thread(
            target=self._refresh, args=(key, entry, ttl), name="sightline-prompt-refresh", daemon=True
        ).start()

    def _refresh(self, key: tuple[str, str | None, str | None], entry: _Entry, ttl: float) -> None:
        try:
            prompt = self.fetch(key)
        except NotFound:
            # Removed or its label moved off: keep serving what we had; say so once per TTL.
            logger.warning("sightline: prompt %r is no longer on the server; the cached one is used", key[0])
            entry.expires = _now() + ttl
        except Exception as exc:  # the server is down or broken: the stale prompt is served meanwhile
            logger.info(
                "sightline: prompt %r not refreshed (%s); the cached one is used", key[0], type(exc).__name__
            )
            entry.expires = _now() + min(ttl, _RETRY_CAP)
        else:
            self.entries[key] = _Entry(prompt, _now() + ttl)
        finally:
            entry.refreshing = False


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except Exception:
        return f"HTTP {response.status_code}"


_stores: dict[tuple[str, str, float], _Store] = {}
_stores_lock = threading.Lock()


def _store(config: SightlineConfig) -> _Store:
    if not config.api_key or not config.server_url:
        raise InvalidInput(
            "prompts are fetched from the Sightline server: "
            "set SightlineConfig(api_key=...) or SIGHTLINE_API_KEY",
            field="api_key",
        )
    key = (config.server_url, config.api_key, config.prompt_fetch_timeout)
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = _Store(config.server_url, config.api_key, config.prompt_fetch_timeout)
        return store


def _key(name: str, label: str | None, version: int | str | None) -> tuple[str, str | None, str | None]:
    if not isinstance(name, str) or not name:
        raise InvalidInput("name: the prompt's name", field="name")
    if label is not None and version is not None:
        raise InvalidInput("give label= or version=, not both", field="label")
    return (name, label, None if version is None else str(version))


class Prompts:
    """``client.prompts``: managed prompts of the client's Sightline project."""

    __slots__ = ("_config", "_entries", "_store", "_ttl")

    def __init__(self, config: SightlineConfig) -> None:
        self._config = config
        self._ttl = config.prompt_cache_ttl
        self._store: _Store | None = None
        self._entries: dict[tuple[str, str | None, str | None], _Entry] = {}

    def _ready(self) -> _Store:
        store = self._store
        if store is None:
            store = self._store = _store(self._config)
            self._entries = store.entries
        return store

    def get(self, name: str, *, label: str | None = None, version: int | str | None = None) -> Prompt:
        """The prompt ``name`` (at ``label``, or ``version``: a number or a template version; by default
        the latest), from the process's cache when it holds it."""
        entry = self._entries.get((name, label, version if version is None else str(version)))
        if entry is not None:
            if entry.expires > _now():
                return entry.prompt
            self._ready().refresh((name, label, None if version is None else str(version)), entry, self._ttl)
            return entry.prompt
        store = self._ready()
        key = _key(name, label, version)
        entry = store.entries.get(key)
        if entry is not None:
            return self.get(name, label=label, version=version)
        return store.cold(key, self._ttl)


class AsyncPrompts(Prompts):
    """``client.prompts`` of an :class:`~sightline.AsyncClient`: ``await client.prompts.get(...)``."""

    __slots__ = ()

    async def get(  # type: ignore[override]
        self, name: str, *, label: str | None = None, version: int | str | None = None
    ) -> Prompt:
        """As :meth:`Prompts.get`; a cold fetch runs in a thread, so the event loop goes on meanwhile."""
        entry = self._entries.get((name, label, version if version is None else str(version)))
        if entry is not None and entry.expires > _now():
            return entry.prompt
        return await asyncio.to_thread(Prompts.get, self, name, label=label, version=version)
