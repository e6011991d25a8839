"""Errors in OpenAI's shape, so OpenAI clients raise their usual exceptions for the gateway's."""

from __future__ import annotations

import orjson

from ..errors import SightlineError

__all__ = ["openai_error"]

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "requests",
}


def openai_error(exc: SightlineError) -> bytes:
    """``{"error": {"message", "type", "param", "code"}}`` for ``exc`` (status: ``exc.status_code``)."""
    kind = _TYPES.get(exc.status_code, "api_error" if exc.status_code >= 500 else "invalid_request_error")
    return orjson.dumps(
        {"error": {"message": exc.message, "type": kind, "param": exc.field, "code": exc.error_type}}
    )
