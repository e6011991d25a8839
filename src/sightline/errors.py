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

__all__ = [
    "AuthenticationError",
    "Conflict",
    "InvalidInput",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "QueryTimeout",
    "SightlineError",
    "Unavailable",
    "UpstreamError",
    "UpstreamTimeout",
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


class Unavailable(SightlineError):
    status_code = 503
    error_type = "unavailable"


class QueryTimeout(Unavailable):
    """A read query ran past its time budget (``query_timeout``) and the database cancelled it."""

    error_type = "query_timeout"
