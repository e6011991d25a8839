"""``/v1/{path}``: the OpenAI-compatible gateway, as a plain ASGI app.

Point any OpenAI client's ``base_url`` at ``http://HOST:PORT/v1`` with a Sightline API key as its
API key. This route is raw ASGI, not a FastAPI endpoint: the hot path does no dependency
injection and builds no request object (measured: the framework's layers cost a fifth of a
forwarded request, see :func:`ahead_of`). It turns ASGI messages into calls of the one
:class:`~sightline.gateway.Gateway` (key, body, the request's life) and sends its answer; errors
are rendered in OpenAI's shape. The call is recorded only after the last byte of the answer went out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from ...errors import SightlineError, redacted_traceback
from ...gateway import Answer, Gateway, openai_error, split_headers
from ..body import ClientGone, read_body

__all__ = ["GatewayDispatch", "ProxyApp", "ahead_of", "install"]

log = logging.getLogger(__name__)

_JSON = [(b"content-type", b"application/json")]


async def _respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers.append((b"content-length", b"%d" % len(body)))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class ProxyApp:
    """The ASGI app behind ``/v1/{path}``."""

    def __init__(self, gateway: Gateway, max_body_bytes: int) -> None:
        self.gateway = gateway
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send, endpoint: str) -> None:
        started, wall = time.perf_counter(), time.time()
        gateway = self.gateway
        gateway.in_flight += 1
        try:
            headers = split_headers(scope["headers"])
            caller = await gateway.keys.authenticate(headers.authorization)
            raw = await read_body(
                receive,
                limit=self.max_body,
                declared=headers.content_length,
                encoding=headers.content_encoding,
            )
            answer = await gateway.handle(
                caller,
                scope["method"],
                endpoint,
                scope["query_string"],
                headers,
                raw,
                started=started,
                wall=wall,
            )
            if answer.body is not None:
                await _respond(send, answer.status, answer.headers + answer.sightline, answer.body)
            else:
                await self._relay(answer, send, receive)
            answer.finish()
        except ClientGone:
            return
        except SightlineError as exc:
            # Raised only before an answer starts: once it has, failures are recorded on the call.
            extra = [(k.encode(), v.encode()) for k, v in getattr(exc, "headers", {}).items()]
            await _respond(send, exc.status_code, [*_JSON, *extra], openai_error(exc))
        except Exception as exc:
            log.error("gateway error on %s %s\n%s", scope["method"], scope["path"], redacted_traceback(exc))
            error = SightlineError("Sightline hit an internal error; it has been logged")
            with contextlib.suppress(RuntimeError):  # the answer had already started
                await _respond(send, 500, list(_JSON), openai_error(error))
        finally:
            gateway.in_flight -= 1

    @staticmethod
    async def _relay(answer: Answer, send: Send, receive: Receive) -> None:
        """Pass a stream through chunk by chunk; a caller that leaves ends the upstream request too."""

        async def write(chunk: bytes) -> None:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

        watcher = asyncio.ensure_future(receive())  # answers only when the caller disconnects
        watcher.add_done_callback(lambda _: answer.leave())
        headers = answer.headers + answer.sightline
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        try:
            closing = await answer.relay(write)
        finally:
            if not watcher.done():
                watcher.cancel()
        if closing is not None:
            await send({"type": "http.response.body", "body": closing, "more_body": False})
        # (Otherwise the answer is left unfinished: the server drops the connection, and the
        # caller sees an error rather than a stream that merely ended early.)


class GatewayDispatch:
    """ASGI middleware: ``/v1/…`` goes straight to the gateway, everything else on to the app."""

    def __init__(self, app: ASGIApp, proxy: ProxyApp) -> None:
        self.app = app
        self.proxy = proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            root: str = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            if path.startswith("/v1/"):
                await self.proxy(scope, receive, send, path[4:].strip("/"))
                return
        await self.app(scope, receive, send)


def install(app: FastAPI, gateway: Gateway) -> None:
    """Serve ``/v1`` from ``gateway`` in ``app`` (as its outermost user middleware)."""
    settings = app.state.settings
    proxy = app.state.gateway_proxy = ProxyApp(gateway, settings.max_body_bytes)
    app.add_middleware(GatewayDispatch, proxy=proxy)


def ahead_of(app: FastAPI) -> GatewayDispatch:
    """``app`` with ``/v1`` dispatched before any of the framework's layers.

    Measured on the gateway's hot path, the framework's per-request work in front of user
    middleware (a telemetry check reading environment variables, the error and body-limit
    layers) cost a fifth of a forwarded request. ``sightline serve`` runs the app wrapped so;
    an app from ``create_app`` alone still serves ``/v1`` through the middleware.
    """
    return GatewayDispatch(app, app.state.gateway_proxy)
