"""Streams that pass every chunk through as it arrives and record the call when the stream ends.

:class:`RecordingStream` is an ``openai.Stream`` (``AsyncRecordingStream`` an ``openai.AsyncStream``)
sharing the original's response; only its iterator is wrapped. Per chunk the caller's thread does a
timestamp (the first), an append and a dict write. The usage chunk Sightline asked for on the
caller's behalf is swallowed. A stream that is closed or dropped before its end is recorded as
``incomplete`` with what arrived so far.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

from openai import AsyncStream, Stream

from sightline.sdk._guard import report_internal_error
from sightline.sdk._record import FEEDBACK_KEY, GENERATION_ID, Call

__all__ = ["AsyncRecordingStream", "RecordingStream"]

_T = TypeVar("_T")


def _finish(call: Call, outcome: str, exc: BaseException | None = None) -> None:
    try:
        call.finish_stream(outcome, exc)
    except Exception as bug:
        report_internal_error("recording a stream", bug)


def _visible(call: Call, chunk: Any) -> bool:
    """Note one chunk; False for the usage chunk the caller did not ask for."""
    if call.first is None:
        call.first = time.perf_counter()
    call.chunks.append(chunk)  # type: ignore[union-attr]
    if call.hide_usage:
        if chunk.usage is not None and not chunk.choices:
            return False
        chunk.__pydantic_fields_set__.discard("usage")
    extra = chunk.__pydantic_extra__
    if extra is not None:
        extra[GENERATION_ID] = call.id
        extra[FEEDBACK_KEY] = call.feedback_key
    return True


def _relay(call: Call, chunks: Iterator[_T]) -> Iterator[_T]:
    # A module function, not a method: the generator must not hold the stream, so that a dropped
    # stream is freed (and recorded) at once rather than at the next cyclic garbage collection.
    try:
        for chunk in chunks:
            if _visible(call, chunk):
                yield chunk
    except GeneratorExit:
        _finish(call, "incomplete")
        raise
    except BaseException as exc:
        _finish(call, "error", exc)
        raise
    call.ended = time.perf_counter()
    _finish(call, "ok")


async def _arelay(call: Call, chunks: AsyncIterator[_T]) -> AsyncIterator[_T]:
    try:
        async for chunk in chunks:
            if _visible(call, chunk):
                yield chunk
    except GeneratorExit:
        _finish(call, "incomplete")
        raise
    except BaseException as exc:
        _finish(call, "error", exc)
        raise
    call.ended = time.perf_counter()
    _finish(call, "ok")


def _adopt(stream: Any, inner: Any, call: Call) -> None:
    # Share the original stream's state (response, decoder, options) rather than re-open anything.
    stream.__dict__.update(inner.__dict__)
    call.chunks = []
    call.request_id = inner.response.headers.get("x-request-id")
    stream._sightline_call = call
    stream.sightline_generation_id = call.id
    stream.sightline_feedback_key = call.sign()


class RecordingStream(Stream[_T]):
    """An ``openai.Stream`` whose chunks are recorded as they pass through."""

    _sightline_call: Call
    sightline_generation_id: str
    """The id of the generation recording this call (also in every chunk's ``model_extra``)."""
    sightline_feedback_key: str
    """The feedback key of this call (also in every chunk's ``model_extra``)."""

    def __init__(self, inner: Stream[_T], call: Call) -> None:  # noqa: D107 - not called by users
        _adopt(self, inner, call)
        self._iterator = _relay(call, inner._iterator)

    def close(self) -> None:
        """Close the response; a stream closed before its end is recorded as incomplete."""
        try:
            super().close()
        finally:
            _finish(self._sightline_call, "incomplete")

    def __del__(self) -> None:
        call = self.__dict__.get("_sightline_call")
        if call is not None and not call.done:
            _finish(call, "incomplete")


class AsyncRecordingStream(AsyncStream[_T]):
    """An ``openai.AsyncStream`` whose chunks are recorded as they pass through."""

    _sightline_call: Call
    sightline_generation_id: str
    sightline_feedback_key: str

    def __init__(self, inner: AsyncStream[_T], call: Call) -> None:  # noqa: D107
        _adopt(self, inner, call)
        self._iterator = _arelay(call, inner._iterator)

    async def close(self) -> None:
        """Close the response; a stream closed before its end is recorded as incomplete."""
        try:
            await super().close()
        finally:
            _finish(self._sightline_call, "incomplete")

    def __del__(self) -> None:
        call = self.__dict__.get("_sightline_call")
        if call is not None and not call.done:
            _finish(call, "incomplete")
