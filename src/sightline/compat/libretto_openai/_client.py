"""``libretto_openai.Client`` and its parameters, as thin names over :class:`sightline.Client`."""

# libretto's create() takes libretto= beside openai's arguments, and its send_feedback() libretto's
# arguments: these signatures differ from the Sightline client's on purpose.
# mypy: disable-error-code="override,misc"

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from functools import cached_property
from typing import Any, NamedTuple, TypedDict

from sightline.mapping import iso
from sightline.sdk import AsyncClient as SightlineAsyncClient
from sightline.sdk import CallParams, SightlineConfig, _worker
from sightline.sdk import Client as SightlineClient
from sightline.sdk._client import (
    _AsyncChat,
    _AsyncChatCompletions,
    _AsyncCompletions,
    _Chat,
    _ChatCompletions,
    _Completions,
)

__all__ = ["AsyncClient", "Client", "LibrettoConfig", "LibrettoCreateParams"]

FEEDBACK_KEY = "libretto_feedback_key"
_REMEMBERED = 10_000  # custom feedback keys a client remembers (each names its generation)


class LibrettoConfig(NamedTuple):
    """libretto's client configuration: the API key (a Sightline key here) and call defaults."""

    api_key: str | None = None
    prompt_template_name: str | None = None
    chat_id: str | None = None
    allow_unnamed_prompts: bool = False
    redact_pii: bool = False


class LibrettoCreateParamDict(TypedDict, total=False):
    project_key: str | None
    api_key: str | None
    prompt_template_name: str | None
    api_name: str | None
    event_id: Any
    template_text: str | None
    template_chat: list[Any] | None
    template_params: Any
    chat_id: Any
    chain_id: Any
    feedback_key: str | None
    parent_event_id: Any


def LibrettoCreateParams(  # noqa: N802 - libretto's name for it
    project_key: str | None = None,
    api_key: str | None = None,
    prompt_template_name: str | None = None,
    api_name: str | None = None,
    event_id: Any = None,
    template_text: str | None = None,
    template_chat: list[Any] | None = None,
    template_params: Any = None,
    chat_id: Any = None,
    chain_id: Any = None,
    feedback_key: str | None = None,
    parent_event_id: Any = None,
) -> LibrettoCreateParamDict:
    """The ``libretto=`` argument of ``create()`` (a dict, as libretto's is; ids may be ``uuid.UUID``)."""
    return LibrettoCreateParamDict(
        project_key=project_key,
        api_key=api_key,
        prompt_template_name=prompt_template_name,
        api_name=api_name,
        event_id=event_id,
        template_text=template_text,
        template_chat=template_chat,
        template_params=template_params,
        chat_id=chat_id,
        chain_id=chain_id,
        feedback_key=feedback_key,
        parent_event_id=parent_event_id,
    )


def _config(libretto: LibrettoConfig | None) -> SightlineConfig:
    libretto = libretto or LibrettoConfig()
    key = libretto.api_key or os.environ.get("LIBRETTO_API_KEY") or os.environ.get("SIGHTLINE_API_KEY")
    return SightlineConfig(
        api_key=key,
        prompt_template_name=libretto.prompt_template_name,
        allow_unnamed_prompts=libretto.allow_unnamed_prompts,
        redact_pii=libretto.redact_pii,
    )


def _params(
    client: Any, libretto: Mapping[str, Any] | None, sightline: CallParams | None
) -> tuple[CallParams | None, str | None]:
    """The call's :class:`CallParams` and the custom feedback key it was given (if any)."""
    if sightline is not None:
        return sightline, None
    config: LibrettoConfig = client._libretto
    given = dict(libretto or {})
    chat_id = given.get("chat_id") or config.chat_id
    params = CallParams(
        event_id=given.get("event_id"),
        chat_id=chat_id,
        chain_id=given.get("chain_id") or given.get("parent_event_id"),
        prompt_template_name=given.get("prompt_template_name") or given.get("api_name"),
        template_chat=given.get("template_chat"),
        template_text=given.get("template_text"),
        template_params=given.get("template_params"),
        metadata={"librettoFeedbackKey": given["feedback_key"]} if given.get("feedback_key") else None,
    )
    return params, given.get("feedback_key")


def _tag(client: Any, result: Any, custom_key: str | None) -> Any:
    """Put ``libretto_feedback_key`` on the response (or each chunk of a stream) beside Sightline's."""
    extra = getattr(result, "__pydantic_extra__", None)
    if isinstance(extra, dict) and "sightline_feedback_key" in extra:
        key = custom_key or extra["sightline_feedback_key"]
        extra[FEEDBACK_KEY] = key
        if custom_key:
            client._remember(custom_key, extra.get("sightline_generation_id"))
    return result


class _LibrettoChatCompletions(_ChatCompletions):
    def create(self, *, libretto: Any = None, sightline: CallParams | None = None, **kwargs: Any) -> Any:
        params, custom = _params(self._client, libretto, sightline)
        return _tag(self._client, super().create(sightline=params, **kwargs), custom)


class _LibrettoCompletions(_Completions):
    def create(self, *, libretto: Any = None, sightline: CallParams | None = None, **kwargs: Any) -> Any:
        params, custom = _params(self._client, libretto, sightline)
        return _tag(self._client, super().create(sightline=params, **kwargs), custom)


class _LibrettoChat(_Chat):
    @cached_property
    def completions(self) -> _LibrettoChatCompletions:
        return _LibrettoChatCompletions(self._client)


class _AsyncLibrettoChatCompletions(_AsyncChatCompletions):
    async def create(
        self, *, libretto: Any = None, sightline: CallParams | None = None, **kwargs: Any
    ) -> Any:
        params, custom = _params(self._client, libretto, sightline)
        return _tag(self._client, await super().create(sightline=params, **kwargs), custom)


class _AsyncLibrettoCompletions(_AsyncCompletions):
    async def create(
        self, *, libretto: Any = None, sightline: CallParams | None = None, **kwargs: Any
    ) -> Any:
        params, custom = _params(self._client, libretto, sightline)
        return _tag(self._client, await super().create(sightline=params, **kwargs), custom)


class _AsyncLibrettoChat(_AsyncChat):
    @cached_property
    def completions(self) -> _AsyncLibrettoChatCompletions:
        return _AsyncLibrettoChatCompletions(self._client)


class _Libretto:
    """What both clients add: the configuration, feedback by libretto's keys, chain results."""

    _libretto: LibrettoConfig
    _sightline: Any

    def _setup(self, libretto: LibrettoConfig | None) -> None:
        self._libretto = libretto or LibrettoConfig()
        self._keys: OrderedDict[str, str] = OrderedDict()
        self._keys_lock = threading.Lock()

    def _remember(self, custom_key: str, generation_id: str | None) -> None:
        if not generation_id:
            return
        with self._keys_lock:
            self._keys[custom_key] = generation_id
            while len(self._keys) > _REMEMBERED:
                self._keys.popitem(last=False)

    def send_feedback(
        self, *, feedback_key: str, better_response: str | None = None, rating: float | None = None
    ) -> None:
        """Feedback on the call whose response carried ``feedback_key``: ``rating`` from 0 to 1, and/or
        the ``better_response`` a user gave. Sent in the background; never blocks."""
        with self._keys_lock:
            generation_id = self._keys.get(feedback_key)
        send = SightlineClient.send_feedback
        if generation_id is not None:
            send(self, generation_id=generation_id, rating=rating, better_response=better_response)  # type: ignore[arg-type]
        else:
            send(self, feedback_key, rating=rating, better_response=better_response)  # type: ignore[arg-type]

    def update_chain(self, chain_id: Any, result: str | None = None) -> None:
        """Set the result of chain ``chain_id`` (a run in Sightline: its output). Sent in the background."""
        destination = self._sightline.destination
        if destination is None:
            return
        body: dict[str, Any] = {"id": str(chain_id), "status": "ok", "endedAt": iso(time.time())}
        if result is not None:
            body["output"] = result
        _worker.submit(destination, "run", body)


class Client(_Libretto, SightlineClient):
    """``libretto_openai.Client``: ``openai.OpenAI``'s arguments plus ``libretto=LibrettoConfig(...)``."""

    def __init__(
        self,
        *,
        libretto: LibrettoConfig | None = None,
        sightline: SightlineConfig | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(sightline=sightline or _config(libretto), **kwargs)
        self._setup(libretto)

    @cached_property
    def chat(self) -> _LibrettoChat:
        return _LibrettoChat(self)

    @cached_property
    def completions(self) -> _LibrettoCompletions:
        return _LibrettoCompletions(self)


class AsyncClient(_Libretto, SightlineAsyncClient):
    """``libretto_openai.AsyncClient``: ``openai.AsyncOpenAI``'s arguments plus ``libretto=``."""

    def __init__(
        self,
        *,
        libretto: LibrettoConfig | None = None,
        sightline: SightlineConfig | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(sightline=sightline or _config(libretto), **kwargs)
        self._setup(libretto)

    @cached_property
    def chat(self) -> _AsyncLibrettoChat:
        return _AsyncLibrettoChat(self)

    @cached_property
    def completions(self) -> _AsyncLibrettoCompletions:
        return _AsyncLibrettoCompletions(self)
