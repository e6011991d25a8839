"""The gateway: one object per server process that authenticates, forwards, caches and records model calls.

A request's life is written once, here, and both routes (``server/routers/proxy.py`` for ``/v1``
and ``server/routers/aieye.py``) call it::

    caller = await gateway.keys.authenticate(authorization)     # the key, off the event loop
    answer = await gateway.handle(caller, method, endpoint, ...) # /v1: a model call or a pass-through
    answer = await gateway.model_call(caller, endpoint, body, context, ...)   # AI-Eye: a model call
    ... the route sends the answer (see :mod:`.answer`) ...
    answer.finish()                                              # cache it, record it (background)

Inside a model call: ``open`` (provider, cache mode, cache key), ``lookup`` (LRU, then the shared
layer), ``hit`` (answered from the cache) or ``forward`` (answered by the upstream).
Nothing here knows HTTP servers: the routes turn ASGI messages into these calls and back.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from ..errors import InvalidInput, UpstreamError
from ..feedback_key import Signer, feedback_secret, hash_api_key
from ..ids import new_id
from ..settings import Settings
from ..store import Database
from ..store.generations.records import Scope
from .answer import Answer, Headers
from .caching.cache import ResponseCache
from .caching.cachekey import CACHEABLE_KINDS, cache_key
from .call import Call, kind_of
from .context import Context, RequestHeaders, parse_context
from .errors import openai_error
from .forwarding.providers import ProviderDirectory
from .forwarding.sse import assemble, replay
from .forwarding.upstream import Target, Upstream, UpstreamResponse
from .keys import Caller, KeyLookup
from .limits import Limiter
from .recording.recorder import Recorder

__all__ = ["Gateway", "answer_text"]

log = logging.getLogger(__name__)

_JSON: Headers = [(b"content-type", b"application/json")]
_SSE: Headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_WHOLE_TYPES = frozenset({"application/json", "text/plain", ""})


def _json_type(content_type: str) -> bool:
    return content_type in ("", "application/json") or content_type.endswith("+json")


def answer_text(kind: str, answer: Any) -> Any:
    """What the AI-Eye endpoints answer as ``response``: the text of the first choice of any
    endpoint that answers choices (chat, completions, edits), the vector of an embedding, and the
    whole answer of any other endpoint."""
    if not isinstance(answer, dict):
        return answer
    if kind == "embedding":
        data = answer.get("data") or []
        return data[0].get("embedding") if data and isinstance(data[0], dict) else None
    choices = answer.get("choices")
    if kind not in ("chat", "completion") and not isinstance(choices, list):
        return answer
    if not choices or not isinstance(choices[0], dict):
        return None
    first = choices[0]
    message = first.get("message")
    if isinstance(message, dict):  # chat
        return message.get("content")
    return first.get("text")  # completions, edits


class Gateway:
    """Forwarding, caching and recording for every gateway request of one server process."""

    def __init__(self, settings: Settings, db: Database, keys: KeyLookup | None = None) -> None:
        self.keys = keys or KeyLookup(db, settings.key_cache_seconds)
        self.upstream = Upstream(
            settings.upstream_timeout,
            ca_bundle=settings.upstream_ca_bundle,
            max_connections=settings.upstream_max_connections,
            trust_env=settings.upstream_trust_env,
        )
        self.providers = ProviderDirectory(
            db, settings.secret_key, settings.upstream_url, settings.upstream_api_key
        )
        self.cache = ResponseCache(db, settings.cache_ttl, settings.redis_url)
        self.limiter = Limiter(db, settings.redis_url, fail_open=settings.limits_fail_open)
        # Called with each finished model call (the server's metrics count them by status and cache).
        self.observers: list[Callable[[Call], None]] = []
        self.in_flight = 0  # requests being answered (counted by the server's handler)
        self.recorder = Recorder(db.writer, in_flight=lambda: self.in_flight)
        self._signers: dict[str, Signer] = {}  # by API key: signing then costs one HMAC update
        self._feedback_secret = feedback_secret(settings.secret_key)

    async def target(self, project_id: int, context: Context) -> Target:
        """Where a request that is not a model call goes (the chosen provider, else the default)."""
        return (await self.providers.project(project_id, context.provider)).target(context.provider)

    async def handle(
        self,
        caller: Caller,
        method: str,
        endpoint: str,
        query: bytes,
        headers: RequestHeaders,
        raw: bytes,
        *,
        started: float | None = None,
        wall: float | None = None,
    ) -> Answer:
        """A ``/v1`` request with its body read: a POST whose JSON body names a model is a model
        call (see :meth:`model_call`); anything else (``GET /v1/models``, files, …) is passed
        through to the upstream and not recorded."""
        context = parse_context(headers.sightline)
        body: Any = None
        if raw and method in _BODY_METHODS and _json_type(headers.content_type):
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise InvalidInput(f"body is not valid JSON: {exc}") from None
            if headers.content_encoding == "gzip":  # sent on decompressed
                headers.forward.setdefault("content-type", "application/json")
        if method == "POST" and isinstance(body, dict) and isinstance(body.get("model"), str):
            return await self.model_call(
                caller,
                endpoint,
                body,
                context,
                forward=headers.forward,
                raw=raw,
                query=query,
                started=started,
                wall=wall,
            )
        target = await self.target(caller.key.project_id, context)
        response = await self.upstream.send(
            method, target.url(endpoint, query), self.upstream_headers(target, headers.forward), raw or None
        )
        if response.content_type in _WHOLE_TYPES:
            return Answer(response.status, response.headers, await response.read())
        return Answer(response.status, response.headers, None, response=response)

    async def model_call(
        self,
        caller: Caller,
        endpoint: str,
        body: dict[str, Any],
        context: Context,
        *,
        forward: Mapping[str, str],
        raw: bytes | None = None,
        method: str = "POST",
        query: bytes = b"",
        default_cache: str = "skip",
        started: float | None = None,
        wall: float | None = None,
    ) -> Answer:
        """Answer a model call from the cache or the upstream.

        ``raw`` is the body as the caller sent it (``None``: ``body`` serialised), ``forward`` the
        caller's headers to send on. A failure to reach the upstream is answered, in OpenAI's
        shape, and recorded like any other answer; the caller's own mistakes raise before anything
        is sent.
        """
        scope = caller.key.scope
        await self.limiter.check(caller.key, context.user_id)  # before anything reaches the provider
        call = await self.open(
            scope, endpoint, body, context, default_cache=default_cache, started=started, wall=wall
        )
        finish = functools.partial(self.finish, scope, call)
        cached = await self.lookup(call)
        if cached is not None:
            payload = self.hit(call, cached)
            call.first = time.perf_counter()
            sightline = self.response_headers(call, caller.secret)
            return Answer(
                200, _SSE if call.stream else _JSON, payload, call=call, sightline=sightline, finish=finish
            )
        try:
            response = await self.forward(
                call, method, query, forward, orjson.dumps(body) if raw is None else raw
            )
        except UpstreamError as exc:
            sightline = self.response_headers(call, caller.secret)
            return Answer(
                exc.status_code, _JSON, openai_error(exc), call=call, sightline=sightline, finish=finish
            )
        sightline = self.response_headers(call, caller.secret)
        if call.stream and response.status < 300 and response.content_type == "text/event-stream":
            return Answer(
                response.status,
                response.headers,
                None,
                call=call,
                sightline=sightline,
                response=response,
                finish=finish,
            )
        try:
            data = await response.read()
        except UpstreamError as exc:
            call.failed(exc.error_type, exc.message, exc.status_code)
            call.status = exc.status_code
            return Answer(
                exc.status_code, _JSON, openai_error(exc), call=call, sightline=sightline, finish=finish
            )
        call.response = data
        return Answer(response.status, response.headers, data, call=call, sightline=sightline, finish=finish)

    async def open(
        self,
        scope: Scope,
        endpoint: str,
        body: dict[str, Any],
        context: Context,
        *,
        default_cache: str = "skip",
        started: float | None = None,
        wall: float | None = None,
    ) -> Call:
        """Start a model call: choose its upstream and cache mode, and ask a stream for its usage."""
        project = await self.providers.project(scope.project_id, context.provider)
        target = project.target(context.provider)
        mode = context.cache or project.cache_mode or default_cache
        stream = body.get("stream") is True
        hide_usage = False
        if stream and kind_of(endpoint) in ("chat", "completion"):
            options = body.get("stream_options")
            hide_usage = not (isinstance(options, dict) and options.get("include_usage"))
        call = Call(
            project_id=scope.project_id,
            endpoint=endpoint,
            body=body,
            context=context,
            target=target,
            cache_mode=mode,
            stream=stream,
            hide_usage=hide_usage,
            started=started,
            wall=wall,
            generation_id=new_id(),
        )
        if mode != "skip" and call.kind in CACHEABLE_KINDS and self.cache.ttl > 0:
            call.cache_key = cache_key(scope.project_id, endpoint, body)
        return call

    async def lookup(self, call: Call) -> bytes | None:
        """The cached answer for the call, when its cache mode is ``use`` and there is one."""
        if call.cache_key is None or call.cache_mode != "use":
            return None
        if call.stream and call.kind not in ("chat", "completion"):
            return None
        cached = await self.cache.get(call.project_id, call.cache_key)
        if cached is not None and call.stream:
            try:
                call.answer = orjson.loads(cached)
            except orjson.JSONDecodeError:
                return None
        return cached

    def hit(self, call: Call, cached: bytes) -> bytes:
        """Answer the call from the cache: the body to send (an SSE stream for a streamed request)."""
        call.cache_hit = True
        call.status = 200
        call.response = cached
        if not call.stream:
            return cached
        if call.answer is None:
            call.answer = orjson.loads(cached)
        return replay(call.kind, call.answer, include_usage=not call.hide_usage)

    async def forward(
        self, call: Call, method: str, query: bytes, headers: Mapping[str, str], raw: bytes
    ) -> UpstreamResponse:
        """Send the call to its upstream; answers once the status and headers are in.

        Raises :class:`UpstreamError` / ``UpstreamTimeout`` (recorded on the call) when it cannot.
        """
        body = raw
        if call.hide_usage:
            options = call.body.get("stream_options")
            options = (
                {**options, "include_usage": True} if isinstance(options, dict) else {"include_usage": True}
            )
            body = orjson.dumps({**call.body, "stream_options": options})
        try:
            response = await self.upstream.send(
                method,
                call.target.url(call.endpoint, query),
                self.upstream_headers(call.target, headers),
                body,
            )
        except UpstreamError as exc:
            call.status = exc.status_code
            call.failed(exc.error_type, exc.message, exc.status_code)
            raise
        call.status = response.status
        call.request_id = response.request_id
        if response.status >= 400:
            call.failed("upstream_error", f"the upstream answered {response.status}", response.status)
        return response

    @staticmethod
    def upstream_headers(target: Target, headers: Mapping[str, str]) -> dict[str, str]:
        """The caller's headers as sent on, with the provider's credentials instead of Sightline's."""
        out = dict(headers)
        if target.api_key:
            if "openai.azure.com" in target.base_url:
                out["api-key"] = target.api_key
            else:
                out["Authorization"] = f"Bearer {target.api_key}"
        return out

    def response_headers(self, call: Call, api_key: str) -> list[tuple[bytes, bytes]]:
        """The ``X-Sightline-*`` headers of a model call's answer."""
        signer = self._signers.get(api_key)
        if signer is None:
            if len(self._signers) > 10_000:
                self._signers.clear()
            signer = self._signers[api_key] = Signer.for_api_key(self._feedback_secret, hash_api_key(api_key))
        return [
            (b"x-sightline-generation-id", call.generation_id.encode()),
            (b"x-sightline-feedback-key", signer.sign(call.generation_bytes).encode()),
            (b"x-sightline-cache", b"HIT" if call.cache_hit else b"MISS"),
        ]

    def finish(self, scope: Scope, call: Call) -> None:
        """The answer has been sent: cache it when asked, and record the call (both in the background)."""
        if call.ended is None:
            call.ended = time.perf_counter()
        if (
            call.cache_key is not None
            and not call.cache_hit
            and call.outcome == "ok"
            and 200 <= call.status < 300
        ):
            self._store(call)
        context = call.context
        if context.run_id is not None and context.user_id is not None:
            self.recorder.announce_run(scope, context.run_id, context.user_id)
        self.recorder.add(scope, call)
        for observer in self.observers:
            observer(call)

    def _store(self, call: Call) -> None:
        assert call.cache_key is not None
        if call.events is not None:
            answer, error = assemble(call.kind, call.events)
            if answer is None or error is not None:
                return
            call.answer = answer
            body = orjson.dumps(answer)
        elif call.response is not None and call.response.lstrip()[:1] == b"{":
            body = call.response  # only JSON answers: a streamed request may be answered from it
        else:
            return
        self.cache.put(call.project_id, call.cache_key, call.endpoint, call.model, body)

    async def aclose(self) -> None:
        """Hand what is left to the writer and close the upstream connections and the cache."""
        self.recorder.close()
        await self.cache.aclose()
        await self.limiter.aclose()
        await self.upstream.aclose()
