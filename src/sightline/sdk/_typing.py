"""Keyword arguments of the recorded ``create`` methods, for type checkers.

openai's own parameter ``TypedDict`` s plus its request options and ``sightline=``, so that code
calling ``sightline.Client`` is checked (and its results typed) exactly as with ``openai.OpenAI``.
Imported by type checkers only: nothing here exists at run time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from openai.types import completion_create_params as completion
from openai.types import embedding_create_params as embedding
from openai.types.chat import completion_create_params as chat

from sightline.sdk._params import CallParams

__all__ = [
    "ChatAny",
    "ChatNonStreaming",
    "ChatStreaming",
    "CompletionAny",
    "CompletionNonStreaming",
    "CompletionStreaming",
    "EmbeddingArgs",
]


class _Options(TypedDict, total=False):
    sightline: CallParams | Mapping[str, Any] | None
    extra_headers: Mapping[str, Any] | None
    extra_query: Mapping[str, object] | None
    extra_body: object | None
    timeout: Any


class ChatStreaming(chat.CompletionCreateParamsStreaming, _Options, total=False):
    pass


class ChatNonStreaming(chat.CompletionCreateParamsNonStreaming, _Options, total=False):
    pass


class ChatAny(chat.CompletionCreateParamsBase, _Options, total=False):
    stream: bool | None


class CompletionStreaming(completion.CompletionCreateParamsStreaming, _Options, total=False):
    pass


class CompletionNonStreaming(completion.CompletionCreateParamsNonStreaming, _Options, total=False):
    pass


class CompletionAny(completion.CompletionCreateParamsBase, _Options, total=False):
    stream: bool | None


class EmbeddingArgs(embedding.EmbeddingCreateParams, _Options, total=False):
    pass
