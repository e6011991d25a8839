"""The one place errors become responses: ``{"error": {"type", "message"}}`` with the class's status.

An unexpected error is answered 500 and logged without any exception's message: a message can
carry what the caller sent (pydantic's ``input_value=``, the value in a ``KeyError``, a body quoted
by a parser), and no prompt or body may reach a log. The log names the exception types and where
they were raised, which is what finding the bug needs. The error is contained here
(:class:`ContainErrors`) rather than re-raised to the server, which would log the whole
traceback with its messages (Starlette re-raises after answering so that uvicorn logs it).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import InvalidInput, SightlineError, redacted_traceback
from .responses import JSON

__all__ = [
    "ContainErrors",
    "error_response",
    "install_error_handlers",
    "redacted_traceback",
    "validation_message",
]

log = logging.getLogger(__name__)


def _to_camel(part: Any) -> str:
    text = str(part)
    head, *rest = text.split("_")
    return head + "".join(w.title() for w in rest)


def validation_message(exc: ValidationError | RequestValidationError, prefix: str = "") -> tuple[str, str]:
    """``(message, field)`` of a pydantic error: every problem, each with its field path."""
    problems, first_field = [], ""
    for err in exc.errors():
        loc = [_to_camel(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        path = ".".join(([prefix] if prefix else []) + loc)
        first_field = first_field or path
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "string_pattern_mismatch" and "x00" in message:
            message = "must not contain NUL characters"
        elif err.get("type") == "string_pattern_mismatch" and "{8}-" in message:
            message = (
                f"expected a UUID such as 'f47ac10b-58cc-4372-a567-0e02b2c3d479', got {err.get('input')!r}"
            )
        problems.append(f"{path}: {message}" if path else message)
    return "; ".join(problems), first_field


def error_response(status: int, error_type: str, message: str, field: str | None = None) -> Response:
    error: dict[str, Any] = {"type": error_type, "message": message}
    if field:
        error["field"] = field
    return JSON({"error": error}, status_code=status)


def _log_unexpected(method: str, path: str, exc: BaseException) -> None:
    log.error("unexpected error on %s %s\n%s", method, path, redacted_traceback(exc))


_INTERNAL = "Sightline hit an internal error; it has been logged"


class ContainErrors:
    """ASGI middleware: an exception no handler took is logged without messages and answered 500.

    If the answer had already started, nothing more can be sent: the server ends the connection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            _log_unexpected(scope.get("method", ""), scope.get("path", ""), exc)
            if not started:
                await error_response(500, "internal_error", _INTERNAL)(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Map every error to the one JSON shape (the dashboard and gateway add their own renderers on top)."""

    async def sightline_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SightlineError)
        renderer = getattr(request.state, "error_renderer", None)
        if renderer is not None:
            rendered: Response = renderer(request, exc)
            return rendered
        response = error_response(exc.status_code, exc.error_type, exc.message, exc.field)
        response.headers.update(getattr(exc, "headers", {}))  # Retry-After of a RateLimited
        return response

    async def request_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        message, field = validation_message(exc)
        return await sightline_error(request, InvalidInput(message, field=field))

    async def pydantic_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ValidationError)
        message, field = validation_message(exc)
        return await sightline_error(request, InvalidInput(message, field=field))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        kinds = {
            404: "not_found",
            405: "method_not_allowed",
            401: "authentication_error",
            403: "permission_denied",
        }
        return error_response(exc.status_code, kinds.get(exc.status_code, "http_error"), str(exc.detail))

    async def unexpected(request: Request, exc: Exception) -> Response:
        _log_unexpected(request.method, request.url.path, exc)
        return error_response(500, "internal_error", _INTERNAL)

    app.add_exception_handler(SightlineError, sightline_error)
    app.add_exception_handler(RequestValidationError, request_validation)
    app.add_exception_handler(ValidationError, pydantic_validation)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
    app.add_middleware(ContainErrors)
