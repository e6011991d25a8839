"""Errors raised by Sightline.

Every error Sightline raises is a :class:`SightlineError`. The server maps each class to one
HTTP status and the single JSON shape ``{"error": {"type", "message"}}``; the CLI maps them to
an exit code and a one-line message.

    SightlineError
     ├── InvalidInput          (400) the caller sent something malformed; nothing was written
     │    └── PayloadTooLarge  (413) the body is over the configured limit
     ├── AuthenticationError   (401) missing, unknown or revoked API key / session
     ├── PermissionDenied      (403) authenticated, but not allowed to do this
     ├── NotFound              (404) no such record in the caller's project
     ├── Conflict              (409) the record exists and differs
     ├── UpstreamError         (502) the model provider could not be reached
     │    └── UpstreamTimeout  (504) the model provider did not answer in time
     └── Unavailable           (503) Sightline itself cannot serve right now (e.g. shutting down)
          └── QueryTimeout     (503) a read query ran past its time budget and was cancelled
"""

from __future__ import annotations

import traceback

__all__ = [
    "AuthenticationError",
    "Conflict",
    "InvalidInput",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "QueryTimeout",
    "RateLimited",
    "SightlineError",
    "Unavailable",
    "UpstreamError",
    "UpstreamTimeout",
    "redacted_traceback",
]


class SightlineError(Exception):
    """Base class of every error Sightline raises."""

    status_code = 500
    error_type = "internal_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(SightlineError):
    """The caller sent something malformed. Nothing was written."""

    status_code = 400
    error_type = "invalid_request"


class PayloadTooLarge(InvalidInput):
    status_code = 413
    error_type = "payload_too_large"


class AuthenticationError(SightlineError):
    status_code = 401
    error_type = "authentication_error"


class PermissionDenied(SightlineError):
    status_code = 403
    error_type = "permission_denied"


class NotFound(SightlineError):
    status_code = 404
    error_type = "not_found"


class Conflict(SightlineError):
    status_code = 409
    error_type = "conflict"


class UpstreamError(SightlineError):
    status_code = 502
    error_type = "upstream_error"


class UpstreamTimeout(UpstreamError):
    status_code = 504
    error_type = "upstream_timeout"


class RateLimited(SightlineError):
    """Over a rate limit or budget: answered 429 with ``headers`` (``Retry-After``, ``x-ratelimit-*``)."""

    status_code = 429
    error_type = "rate_limit_exceeded"

    def __init__(self, message: str, headers: dict[str, str], *, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.headers = headers


class Unavailable(SightlineError):
    status_code = 503
    error_type = "unavailable"


class QueryTimeout(Unavailable):
    """A read query ran past its time budget (``query_timeout``) and the database cancelled it."""

    error_type = "query_timeout"


def redacted_traceback(exc: BaseException) -> str:
    """``exc``'s traceback (and its causes') with every exception message left out.

    For logs: a message can carry what a caller sent (pydantic's ``input_value=``, the value in a
    ``KeyError``, a database's quote of the row it refused), and no prompt or body may reach a log.
    The exception types and where they were raised are what finding the bug needs.
    """
    parts: list[str] = []
    seen: set[int] = set()
    current: traceback.TracebackException | None = traceback.TracebackException.from_exception(exc)
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        exc_type = current.exc_type
        name = f"{exc_type.__module__}.{exc_type.__qualname__}" if exc_type is not None else "exception"
        parts.append(
            "".join(current.stack.format()) + f"{name} (message withheld: it may hold request data)\n"
        )
        if current.__cause__ is not None:
            current = current.__cause__
        elif current.__context__ is not None and not current.__suppress_context__:
            current = current.__context__
        else:
            current = None
    return "\nraised while handling:\n".join(reversed(parts))
