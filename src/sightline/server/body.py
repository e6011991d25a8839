"""Reading request bodies: size limit, gzip, JSON, in one place for every JSON endpoint."""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from fastapi import Request

from ..errors import InvalidInput, PayloadTooLarge

__all__ = ["read_json", "read_raw"]


async def read_raw(request: Request) -> bytes:
    """The body, decompressed when sent gzip-encoded, refused when over the size limit."""
    limit: int = request.app.state.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes is over the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if request.headers.get("content-encoding", "").lower() == "gzip":
        try:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            raw = inflater.decompress(raw, limit + 1)
        except zlib.error:
            raise InvalidInput("body is not valid gzip") from None
        if len(raw) > limit or inflater.unconsumed_tail:
            raise PayloadTooLarge(f"decompressed body is over the limit of {limit} bytes")
    return raw


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
