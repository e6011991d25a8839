"""``/v1/{path}``: the OpenAI-compatible gateway, as a plain ASGI app.

Point any OpenAI client's ``base_url`` at ``http://HOST:PORT/v1`` with a Sightline API key as its
API key. This route is raw ASGI, not a FastAPI endpoint: the hot path does no dependency
injection, no request object, no per-request database read (the key comes from the KeyCache, the
provider from the in-process directory, cached answers from the LRU), and errors are rendered here
in OpenAI's shape. The call is recorded only after the last byte of the answer went out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from ...errors import AuthenticationError, InvalidInput, PayloadTooLarge, SightlineError, UpstreamError
from ...gateway import Call, Context, Gateway, StreamRelay, openai_error, parse_context, split_headers
from ...gateway.upstream import UpstreamResponse
from ...store.access.projects import ApiKey
from ..auth import KeyCache

__all__ = ["GatewayDispatch", "ProxyApp", "ahead_of", "install"]

log = logging.getLogger(__name__)

_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class _ClientGone(Exception):
    """The caller went away before its request was read."""


def _json_type(content_type: str) -> bool:
    return content_type in ("", "application/json") or content_type.endswith("+json")


def _bearer(header: str | None) -> str:
    if header is None:
        raise AuthenticationError("missing API key: send 'Authorization: Bearer <Sightline API key>'")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError("missing API key: send 'Authorization: Bearer <Sightline API key>'")
    return token


async def _read_body(receive: Receive, limit: int, declared: int | None, encoding: str) -> bytes:
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes is over the limit of {limit} bytes")
    first = await receive()
    if first["type"] == "http.disconnect":
        raise _ClientGone
    body: bytes = first.get("body", b"")
    if first.get("more_body"):
        chunks, size = [body], len(body)
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
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
            raise InvalidInput("body is not valid gzip") from None
        if len(body) > limit or inflater.unconsumed_tail:
            raise PayloadTooLarge(f"decompressed body is over the limit of {limit} bytes")
    elif encoding not in ("", "identity"):
        raise InvalidInput(f"content-encoding {encoding!r} is not supported (send identity or gzip)")
    return body


async def _respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers.append((b"content-length", b"%d" % len(body)))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class ProxyApp:
    """The ASGI app behind ``/v1/{path}``."""

    def __init__(self, gateway: Gateway, keys: KeyCache, max_body_bytes: int) -> None:
        self.gateway = gateway
        self.keys = keys
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send, endpoint: str) -> None:
        started, wall = time.perf_counter(), time.time()
        self.gateway.in_flight += 1
        try:
            await self._handle(scope, receive, send, endpoint, started, wall)
        except _ClientGone:
            return
        except SightlineError as exc:
            # Raised only before an answer starts: once it has, failures are recorded on the call.
            await _respond(send, exc.status_code, list(_JSON), openai_error(exc))
        except Exception:
            log.exception("gateway error on %s %s", scope["method"], scope["path"])
            error = SightlineError("Sightline hit an internal error; it has been logged")
            with contextlib.suppress(RuntimeError):  # the answer had already started
                await _respond(send, 500, list(_JSON), openai_error(error))
        finally:
            self.gateway.in_flight -= 1

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, endpoint: str, started: float, wall: float
    ) -> None:
        headers = split_headers(scope["headers"])
        token = _bearer(headers.authorization)
        key = self.keys.lookup(token)
        if key is None:
            raise AuthenticationError("unknown or revoked API key")
        context = parse_context(headers.sightline)
        method: str = scope["method"]
        raw = await _read_body(receive, self.max_body, headers.content_length, headers.content_encoding)
        body: Any = None
        if raw and method in _BODY_METHODS and _json_type(headers.content_type):
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise InvalidInput(f"body is not valid JSON: {exc}") from None
            if headers.content_encoding == "gzip":
                headers.forward.setdefault("content-type", "application/json")
        if method == "POST" and isinstance(body, dict) and isinstance(body.get("model"), str):
            await self._model_call(
                scope, send, receive, key, token, headers.forward, endpoint, body, raw, context, started, wall
            )
        else:
            await self._pass_through(scope, send, key, headers.forward, endpoint, raw, context)

    async def _model_call(
        self,
        scope: Scope,
        send: Send,
        receive: Receive,
        key: ApiKey,
        token: str,
        forward: dict[str, str],
        endpoint: str,
        body: dict[str, Any],
        raw: bytes,
        context: Context,
        started: float,
        wall: float,
    ) -> None:
        gateway = self.gateway
        call = await gateway.open(key.scope, endpoint, body, context, started=started, wall=wall)
        cached = await gateway.lookup(call)
        if cached is not None:
            payload = gateway.hit(call, cached)
            headers = (_SSE if call.stream else _JSON) + gateway.response_headers(call, token)
            call.first = time.perf_counter()
            await _respond(send, 200, headers, payload)
            gateway.finish(key.scope, call)
            return
        try:
            response = await gateway.forward(call, scope["method"], scope["query_string"], forward, raw)
        except UpstreamError as exc:
            headers = list(_JSON) + gateway.response_headers(call, token)
            await _respond(send, exc.status_code, headers, openai_error(exc))
            gateway.finish(key.scope, call)
            return
        if call.stream and response.status < 300 and response.content_type == "text/event-stream":
            await self._relay(call, response, send, receive, key, token)
            return
        try:
            data = await response.read()
        except UpstreamError as exc:
            call.failed(exc.error_type, exc.message, exc.status_code)
            call.status = exc.status_code
            await _respond(
                send, exc.status_code, list(_JSON) + gateway.response_headers(call, token), openai_error(exc)
            )
            gateway.finish(key.scope, call)
            return
        call.response = data
        await _respond(send, response.status, response.headers + gateway.response_headers(call, token), data)
        gateway.finish(key.scope, call)

    async def _relay(
        self, call: Call, response: UpstreamResponse, send: Send, receive: Receive, key: ApiKey, token: str
    ) -> None:
        """Pass a stream through chunk by chunk; a caller that leaves ends the upstream request too."""
        relay = StreamRelay(call.hide_usage)
        state = {"finished": False, "gone": False}

        def left(_: Any) -> None:
            if not state["finished"]:
                state["gone"] = True
                response.close()

        watcher = asyncio.ensure_future(receive())
        watcher.add_done_callback(left)
        headers = response.headers + self.gateway.response_headers(call, token)
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        broken = False
        try:
            async for chunk in response.chunks():
                out = relay.feed(chunk)
                if out:
                    if call.first is None:
                        call.first = time.perf_counter()
                    await send({"type": "http.response.body", "body": out, "more_body": True})
                if state["gone"]:
                    break
        except UpstreamError as exc:
            if not state["gone"]:
                call.failed(exc.error_type, exc.message, exc.status_code)
                broken = True
        finally:
            state["finished"] = True
            if not watcher.done():
                watcher.cancel()
            response.close()
        if not state["gone"] and not broken:
            await send({"type": "http.response.body", "body": relay.flush(), "more_body": False})
        # (A broken stream is left unfinished, so the server drops the connection and the caller
        # sees an error rather than a stream that merely ended early.)
        call.ended = time.perf_counter()
        call.events = relay.events
        if state["gone"]:
            call.failed(
                "incomplete_stream",
                f"the caller closed the stream after {relay.forwarded} chunks, before it ended",
            )
        self.gateway.finish(key.scope, call)

    async def _pass_through(
        self,
        scope: Scope,
        send: Send,
        key: ApiKey,
        forward: dict[str, str],
        endpoint: str,
        raw: bytes,
        context: Context,
    ) -> None:
        """Anything that is not a model call (``GET /v1/models``, files, …): forwarded, not recorded."""
        target = await self.gateway.target(key.project_id, context)
        upstream = self.gateway.upstream
        response = await upstream.send(
            scope["method"],
            target.url(endpoint, scope["query_string"]),
            self.gateway.upstream_headers(target, forward),
            raw or None,
        )
        if response.content_type in ("application/json", "text/plain", ""):
            await _respond(send, response.status, response.headers, await response.read())
            return
        await send({"type": "http.response.start", "status": response.status, "headers": response.headers})
        try:
            async for chunk in response.chunks():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except UpstreamError as exc:
            # Left unfinished: the server drops the connection, so the caller sees the answer broke off.
            log.warning("upstream answer to %s %s broke off: %s", scope["method"], endpoint, exc.message)
            return
        finally:
            response.close()
        await send({"type": "http.response.body", "body": b"", "more_body": False})


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
    proxy = app.state.gateway_proxy = ProxyApp(gateway, app.state.keys, settings.max_body_bytes)
    app.add_middleware(GatewayDispatch, proxy=proxy)


def ahead_of(app: FastAPI) -> GatewayDispatch:
    """``app`` with ``/v1`` dispatched before any of the framework's layers.

    Measured on the gateway's hot path, the framework's per-request work in front of user
    middleware (a telemetry check reading environment variables, the error and body-limit
    layers) cost a fifth of a forwarded request. ``sightline serve`` runs the app wrapped so;
    an app from ``create_app`` alone still serves ``/v1`` through the middleware.
    """
    return GatewayDispatch(app, app.state.gateway_proxy)
