"""``sightline.Client`` and ``sightline.AsyncClient``: the openai clients, recording every generation.

They subclass ``openai.OpenAI`` / ``openai.AsyncOpenAI`` and replace only the ``chat.completions``,
``completions`` and ``embeddings`` resources by subclasses whose ``create`` also takes
``sightline=CallParams(...)``. What ``create`` returns is what openai returns (a stream is an
``openai.Stream`` subclass passing the same chunks through), with the generation id and feedback
key in its ``model_extra``.

The client is where the SDK's parts are wired together: it sets the process's exporter up with the
encoder of records (:func:`recorder`), wraps streams in recording streams, and tells a call that
openai sent it (``_prepare_request``), since only calls that reached the provider are recorded.
"""

from __future__ import annotations

import threading
import uuid
import warnings
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, Self, Unpack, cast, overload

import openai
from openai.resources.chat import AsyncChat, Chat
from openai.resources.chat.completions import AsyncCompletions as AsyncChatCompletions
from openai.resources.chat.completions import Completions as ChatCompletions
from openai.resources.completions import AsyncCompletions, Completions
from openai.resources.embeddings import AsyncEmbeddings, Embeddings
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from sightline.sdk import _worker
from sightline.sdk._config import SightlineConfig
from sightline.sdk._encode import encode
from sightline.sdk._feedback import send_feedback
from sightline.sdk._guard import report_internal_error
from sightline.sdk._params import CallParams, InvalidParams, coerce_id
from sightline.sdk._prompts import AsyncPrompts, Prompts
from sightline.sdk._record import CHAT, COMPLETION, EMBEDDING, Call, Recorder, RunLike
from sightline.sdk._streams import AsyncRecordingStream, RecordingStream

if TYPE_CHECKING:
    from sightline.sdk._typing import (
        ChatAny,
        ChatNonStreaming,
        ChatStreaming,
        CompletionAny,
        CompletionNonStreaming,
        CompletionStreaming,
        EmbeddingArgs,
    )

__all__ = ["AsyncClient", "Client", "recorder"]

SightlineArg = CallParams | Mapping[str, Any] | None
_warned = threading.Event()
# The recorded call this thread or task is making: openai's request hook marks it as sent.
_sending: ContextVar[Call | None] = ContextVar("sightline_sending", default=None)


def recorder(config: SightlineConfig, base_url: str) -> Recorder:
    """The recorder of a (resolved) configuration, with the process's exporter set up for it."""
    made = Recorder(config, base_url)
    if made.enabled:
        if config.redact_pii:
            from sightline.sdk._redact import require_pii_extra

            require_pii_extra()
        _worker.configure(config, encode)
    return made


def _recorder(config: SightlineConfig | None, base_url: str) -> Recorder:
    resolved = (config or SightlineConfig()).resolved()
    if resolved.enabled and not resolved.api_key and not _warned.is_set():
        _warned.set()
        warnings.warn(
            "sightline: no API key (SightlineConfig(api_key=...) or SIGHTLINE_API_KEY), so this client "
            "works as the plain openai client and records nothing",
            stacklevel=3,
        )
    return recorder(resolved, base_url)


def _begin(recorder: Recorder, kind: str, kwargs: dict[str, Any], sightline: SightlineArg) -> Call | None:
    try:
        return recorder.begin(kind, kwargs, sightline)
    except InvalidParams:
        raise
    except Exception as bug:
        report_internal_error("preparing a call", bug)
        return None


def _answered(call: Call, result: Any) -> Any:
    """What the caller gets: the response, recorded now, or a stream recording as it passes through."""
    if isinstance(result, openai.Stream | openai.AsyncStream):
        try:
            call.sign()
            if isinstance(result, openai.Stream):
                return RecordingStream(result, call)
            return AsyncRecordingStream(result, call)
        except Exception as bug:
            report_internal_error("recording a call", bug)
            return result
    return call.succeeded(result)


def _sent() -> None:
    call = _sending.get()
    if call is not None:
        call.sent = True


def _call(
    recorder: Recorder, kind: str, create: Callable[..., Any], kwargs: dict[str, Any], sightline: SightlineArg
) -> Any:
    call = _begin(recorder, kind, kwargs, sightline)
    if call is None:
        return create(**kwargs)
    token = _sending.set(call)
    try:
        result = create(**kwargs)
    except BaseException as exc:
        call.failed(exc)
        raise
    finally:
        _sending.reset(token)
    return _answered(call, result)


async def _acall(
    recorder: Recorder,
    kind: str,
    create: Callable[..., Awaitable[Any]],
    kwargs: dict[str, Any],
    sightline: SightlineArg,
) -> Any:
    call = _begin(recorder, kind, kwargs, sightline)
    if call is None:
        return await create(**kwargs)
    token = _sending.set(call)
    try:
        result = await create(**kwargs)
    except BaseException as exc:
        call.failed(exc)
        raise
    finally:
        _sending.reset(token)
    return _answered(call, result)


class _ChatCompletions(ChatCompletions):
    @overload  # type: ignore[override]
    def create(self, **kwargs: Unpack[ChatStreaming]) -> openai.Stream[ChatCompletionChunk]: ...
    @overload
    def create(self, **kwargs: Unpack[ChatNonStreaming]) -> ChatCompletion: ...
    @overload
    def create(self, **kwargs: Unpack[ChatAny]) -> ChatCompletion | openai.Stream[ChatCompletionChunk]: ...
    def create(self, *, sightline: SightlineArg = None, **kwargs: Any) -> Any:
        """``openai``'s ``chat.completions.create``, recorded; ``sightline=`` takes :class:`CallParams`."""
        return _call(self._client._sightline, CHAT, super().create, kwargs, sightline)  # type: ignore[attr-defined]

    if not TYPE_CHECKING:  # type checkers keep openai's generic signature of parse()

        def parse(self, *, sightline: SightlineArg = None, **kwargs: Any) -> Any:
            """``openai``'s ``chat.completions.parse``, recorded; ``sightline=`` takes :class:`CallParams`."""
            return _call(self._client._sightline, CHAT, super().parse, kwargs, sightline)


class _Completions(Completions):
    @overload  # type: ignore[override]
    def create(self, **kwargs: Unpack[CompletionStreaming]) -> openai.Stream[Completion]: ...
    @overload
    def create(self, **kwargs: Unpack[CompletionNonStreaming]) -> Completion: ...
    @overload
    def create(self, **kwargs: Unpack[CompletionAny]) -> Completion | openai.Stream[Completion]: ...
    def create(self, *, sightline: SightlineArg = None, **kwargs: Any) -> Any:
        """``openai``'s ``completions.create``, recorded; ``sightline=`` takes :class:`CallParams`."""
        return _call(self._client._sightline, COMPLETION, super().create, kwargs, sightline)  # type: ignore[attr-defined]


class _Embeddings(Embeddings):
    def create(self, **kwargs: Unpack[EmbeddingArgs]) -> CreateEmbeddingResponse:  # type: ignore[override]
        """``openai``'s ``embeddings.create``, recorded; ``sightline=`` takes :class:`CallParams`."""
        options: dict[str, Any] = dict(kwargs)
        sightline = options.pop("sightline", None)
        recorder: Recorder = self._client._sightline  # type: ignore[attr-defined]
        return cast(CreateEmbeddingResponse, _call(recorder, EMBEDDING, super().create, options, sightline))


class _Chat(Chat):
    @cached_property
    def completions(self) -> _ChatCompletions:
        return _ChatCompletions(self._client)


class _AsyncChatCompletions(AsyncChatCompletions):
    @overload  # type: ignore[override]
    async def create(self, **kwargs: Unpack[ChatStreaming]) -> openai.AsyncStream[ChatCompletionChunk]: ...
    @overload
    async def create(self, **kwargs: Unpack[ChatNonStreaming]) -> ChatCompletion: ...
    @overload
    async def create(
        self, **kwargs: Unpack[ChatAny]
    ) -> ChatCompletion | openai.AsyncStream[ChatCompletionChunk]: ...
    async def create(self, *, sightline: SightlineArg = None, **kwargs: Any) -> Any:
        """``openai``'s ``chat.completions.create``, recorded; ``sightline=`` takes :class:`CallParams`."""
        return await _acall(self._client._sightline, CHAT, super().create, kwargs, sightline)  # type: ignore[attr-defined]

    if not TYPE_CHECKING:

        async def parse(self, *, sightline: SightlineArg = None, **kwargs: Any) -> Any:
            """``openai``'s ``chat.completions.parse``, recorded; ``sightline=`` takes :class:`CallParams`."""
            return await _acall(self._client._sightline, CHAT, super().parse, kwargs, sightline)


class _AsyncCompletions(AsyncCompletions):
    @overload  # type: ignore[override]
    async def create(self, **kwargs: Unpack[CompletionStreaming]) -> openai.AsyncStream[Completion]: ...
    @overload
    async def create(self, **kwargs: Unpack[CompletionNonStreaming]) -> Completion: ...
    @overload
    async def create(
        self, **kwargs: Unpack[CompletionAny]
    ) -> Completion | openai.AsyncStream[Completion]: ...
    async def create(self, *, sightline: SightlineArg = None, **kwargs: Any) -> Any:
        """``openai``'s ``completions.create``, recorded; ``sightline=`` takes :class:`CallParams`."""
        return await _acall(self._client._sightline, COMPLETION, super().create, kwargs, sightline)  # type: ignore[attr-defined]


class _AsyncEmbeddings(AsyncEmbeddings):
    async def create(self, **kwargs: Unpack[EmbeddingArgs]) -> CreateEmbeddingResponse:  # type: ignore[override]
        """``openai``'s ``embeddings.create``, recorded; ``sightline=`` takes :class:`CallParams`."""
        options: dict[str, Any] = dict(kwargs)
        sightline = options.pop("sightline", None)
        recorder: Recorder = self._client._sightline  # type: ignore[attr-defined]
        result = await _acall(recorder, EMBEDDING, super().create, options, sightline)
        return cast(CreateEmbeddingResponse, result)


class _AsyncChat(AsyncChat):
    @cached_property
    def completions(self) -> _AsyncChatCompletions:
        return _AsyncChatCompletions(self._client)


class _SightlineMixin:
    """What the sync and async clients share: the recorder, its configuration, copies, feedback.

    Comes before the openai client class in the bases, so ``super()`` here is openai's.
    """

    _sightline: Recorder
    base_url: Any

    def __init__(
        self,
        *,
        sightline: SightlineConfig | None = None,
        _sightline_recorder: Recorder | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._sightline = _sightline_recorder or _recorder(sightline, str(self.base_url))

    @cached_property
    def prompts(self) -> Prompts:
        """Managed prompts of this client's Sightline project: ``client.prompts.get("name", label=...)``."""
        return (AsyncPrompts if isinstance(self, openai.AsyncOpenAI) else Prompts)(self._sightline.config)

    @property
    def sightline_config(self) -> SightlineConfig:
        """The resolved Sightline configuration of this client."""
        return self._sightline.config

    def copy(
        self,
        *,
        sightline: SightlineConfig | None = None,
        _sightline_recorder: Recorder | None = None,
        _extra_kwargs: Mapping[str, Any] = {},
        **kwargs: Any,
    ) -> Self:
        """openai's ``copy``/``with_options``, keeping this client's Sightline configuration."""
        recorder = _sightline_recorder or (None if sightline is not None else self._sightline)
        extra = {"sightline": sightline, "_sightline_recorder": recorder, **_extra_kwargs}
        return super().copy(_extra_kwargs=extra, **kwargs)  # type: ignore[misc, no-any-return]

    with_options = copy

    def _sightline_bind(self, run: RunLike) -> Self:
        """A copy of this client whose calls are steps of ``run``."""
        return self.copy(_sightline_recorder=self._sightline.bound(run, str(self.base_url)))

    def send_feedback(
        self,
        feedback_key: str | None = None,
        *,
        generation_id: str | uuid.UUID | None = None,
        rating: float | None = None,
        thumbs: Literal["up", "down"] | None = None,
        comment: str | None = None,
        better_response: str | None = None,
        categories: list[str] | None = None,
        user_id: str | uuid.UUID | None = None,
    ) -> None:
        """Queue feedback on a generation, named by its feedback key (or its id).

        ``rating`` is a score from 0 to 1. Validated now (:class:`ValueError` when malformed), sent in
        the background; it never blocks and is safe to call from async code.
        """
        send_feedback(
            self._sightline,
            feedback_key=feedback_key,
            generation_id=coerce_id("generation_id", generation_id),
            rating=rating,
            thumbs=thumbs,
            comment=comment,
            better_response=better_response,
            categories=categories,
            user_id=coerce_id("user_id", user_id),
        )


class Client(_SightlineMixin, openai.OpenAI):
    """``openai.OpenAI`` that records every chat, completion and embedding call in Sightline.

    Takes openai's arguments unchanged plus ``sightline=SightlineConfig(...)``; without it the
    configuration comes from ``SIGHTLINE_API_KEY`` / ``SIGHTLINE_SERVER_URL``.
    """

    @cached_property
    def chat(self) -> _Chat:
        return _Chat(self)

    @cached_property
    def completions(self) -> _Completions:
        return _Completions(self)

    def _prepare_request(self, request: Any) -> None:
        # openai's hook, called just before each request (each retry) is sent.
        _sent()
        return super()._prepare_request(request)

    @cached_property
    def embeddings(self) -> _Embeddings:
        return _Embeddings(self)


class AsyncClient(_SightlineMixin, openai.AsyncOpenAI):
    """``openai.AsyncOpenAI`` that records every chat, completion and embedding call in Sightline."""

    @cached_property
    def chat(self) -> _AsyncChat:
        return _AsyncChat(self)

    @cached_property
    def completions(self) -> _AsyncCompletions:
        return _AsyncCompletions(self)

    async def _prepare_request(self, request: Any) -> None:
        # openai's hook, called just before each request (each retry) is sent.
        _sent()
        return await super()._prepare_request(request)

    @cached_property
    def embeddings(self) -> _AsyncEmbeddings:
        return _AsyncEmbeddings(self)
