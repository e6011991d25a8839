"""Reading request bodies: size limit, gzip, JSON, in one place for every endpoint and the gateway.

:func:`read_body` reads the ASGI messages themselves (the gateway's raw ``/v1`` route has no
request object); :func:`read_raw` and :func:`read_json` are the same reader for a framework route.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from fastapi import Request
from starlette.requests import ClientDisconnect
from starlette.types import Receive

from ..errors import InvalidInput, PayloadTooLarge

__all__ = ["ClientGone", "read_body", "read_buffer", "read_json", "read_raw"]


class ClientGone(ClientDisconnect):
    """The caller went away before its request was read (nobody is left to answer)."""


async def read_body(receive: Receive, *, limit: int, declared: int | None, encoding: str) -> bytes:
    """The body of the request that ``receive`` delivers, decompressed when sent gzip-encoded.

    ``declared`` is its ``Content-Length`` (``None`` when not sent), ``encoding`` its
    ``Content-Encoding`` in lower case. Over ``limit`` bytes, sent or decompressed: :class:`PayloadTooLarge`,
    refused as soon as it shows (a declared length is not read at all).
    """
    body = await _read(receive, limit=limit, declared=declared, encoding=encoding, buffer=False)
    return bytes(body) if isinstance(body, bytearray) else body


async def _read(
    receive: Receive, *, limit: int, declared: int | None, encoding: str, buffer: bool
) -> bytes | bytearray:
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes is over the limit of {limit} bytes")
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone
    first: bytes = message.get("body", b"")
    body: bytes | bytearray = first
    if message.get("more_body") and buffer and declared is not None:
        body = await _fill(receive, first, declared)
    elif message.get("more_body"):  # the usual small body comes in one message: no list, no join
        chunks, size = [body], len(body)
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
    if len(body) > limit:
        raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
    if encoding == "gzip":
        try:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            body = inflater.decompress(body, limit + 1)
        except zlib.error:
            raise InvalidInput("body is not valid gzip", field="Content-Encoding") from None
        if len(body) > limit or inflater.unconsumed_tail:
            raise PayloadTooLarge(f"decompressed body is over the limit of {limit} bytes")
    elif encoding not in ("", "identity"):
        raise InvalidInput(
            f"Content-Encoding {encoding!r} is not supported (send identity or gzip)",
            field="Content-Encoding",
        )
    return body


async def _fill(receive: Receive, first: bytes, declared: int) -> bytearray:
    """A body of ``declared`` bytes (within the limit) read into one buffer of that size: no list of
    chunks, and no second copy joined from them (a big ingest batch would be held twice)."""
    buffer, size = bytearray(declared), 0
    chunk, more = first, True
    while True:
        end = size + len(chunk)
        if end > declared:
            raise InvalidInput("body is longer than its Content-Length", field="Content-Length")
        buffer[size:end] = chunk
        size = end
        if not more:
            break
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk, more = message.get("body", b""), bool(message.get("more_body"))
    if size < declared:
        del buffer[size:]
    return buffer


async def read_raw(request: Request) -> bytes:
    """The body, decompressed when sent gzip-encoded, refused when over the size limit."""
    declared = request.headers.get("content-length")
    return await read_body(
        request.receive,
        limit=request.app.state.settings.max_body_bytes,
        declared=int(declared) if declared is not None and declared.isdigit() else None,
        encoding=request.headers.get("content-encoding", "").strip().lower(),
    )


async def read_buffer(request: Request) -> bytes | bytearray:
    """:func:`read_raw`, where a body sent in several parts with its length is read into one
    ``bytearray`` (not copied again into ``bytes``): for the biggest bodies, ingest batches."""
    declared = request.headers.get("content-length")
    return await _read(
        request.receive,
        limit=request.app.state.settings.max_body_bytes,
        declared=int(declared) if declared is not None and declared.isdigit() else None,
        encoding=request.headers.get("content-encoding", "").strip().lower(),
        buffer=True,
    )


async def read_json(request: Request, *, expect: type = dict) -> Any:
    """The body parsed as JSON, which must be of type ``expect``."""
    raw = await read_raw(request)
    if not raw.strip():
        raise InvalidInput("request body is empty; expected JSON")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"body is not valid JSON: {exc}") from None
    if not isinstance(value, expect):
        kind = "an object" if expect is dict else "an array"
        raise InvalidInput(f"body must be a JSON {kind}")
    return value
