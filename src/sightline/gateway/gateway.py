"""The gateway: one object per server process that forwards, caches and records model calls.

A request's life, as the ``/v1`` and AI-Eye routes drive it::

    call = await gateway.open(scope, endpoint, body, context)   # provider, cache mode, cache key
    cached = await gateway.lookup(call)                         # LRU, then the shared layer
    payload = gateway.hit(call, cached)                         #   … answered from the cache
    response = await gateway.forward(call, method, query, headers, raw)   # … or from the upstream
    ... the route sends the answer ...
    gateway.finish(scope, call)                                 # cache it, record it (background)

Nothing here knows HTTP servers: the routes turn ASGI messages into these calls and back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import UpstreamError
from ..feedback_key import Signer
from ..ids import new_id
from ..settings import Settings
from ..store import Database
from ..store.generations.records import Scope
from .cache import ResponseCache
from .cachekey import CACHEABLE_KINDS, cache_key
from .call import Call, kind_of
from .context import PREFIX, Context
from .providers import ProviderDirectory
from .recorder import Recorder
from .sse import assemble, replay
from .upstream import Target, Upstream, UpstreamResponse

__all__ = ["Gateway", "RequestHeaders", "answer_text", "split_headers"]

log = logging.getLogger(__name__)

# Never sent on to the provider: hop-by-hop, recomputed, or the caller's own credentials.
_DROP_REQUEST = frozenset(
    {
        b"host",
        b"authorization",
        b"api-key",
        b"content-length",
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-authorization",
        b"proxy-connection",
        b"accept-encoding",
        b"content-encoding",
        b"cookie",
        b"expect",
    }
)
_PREFIX = PREFIX.encode()


@dataclass(slots=True)
class RequestHeaders:
    """A request's headers, sorted by what the gateway does with them."""

    authorization: str | None = None
    sightline: dict[str, str] = field(default_factory=dict)
    forward: dict[str, str] = field(default_factory=dict)
    content_length: int | None = None
    content_type: str = ""
    content_encoding: str = ""


def split_headers(raw: Iterable[tuple[bytes, bytes]]) -> RequestHeaders:
    """Sort raw (lowercase-named) request headers into credentials, ``X-Sightline-*``, and the rest."""
    out = RequestHeaders()
    for name, value in raw:
        if name.startswith(_PREFIX):
            out.sightline[name.decode("latin-1")] = value.decode("latin-1")
        elif name in _DROP_REQUEST:
            if name == b"authorization":
                out.authorization = value.decode("latin-1")
            elif name == b"content-length" and value.isdigit():
                out.content_length = int(value)
            elif name == b"content-encoding":
                out.content_encoding = value.decode("latin-1").strip().lower()
        else:
            text = value.decode("latin-1")
            if name == b"content-type":
                out.content_type = text.partition(";")[0].strip().lower()
            out.forward[name.decode("latin-1")] = text
    return out


def answer_text(kind: str, answer: Any) -> Any:
    """What the AI-Eye endpoints answer as ``response``: the text of the first choice (the vector
    of an embedding; the whole answer of any other endpoint)."""
    if not isinstance(answer, dict):
        return answer
    if kind in ("chat", "completion"):
        choices = answer.get("choices") or []
        if not choices or not isinstance(choices[0], dict):
            return None
        if kind == "chat":
            return (choices[0].get("message") or {}).get("content")
        return choices[0].get("text")
    if kind == "embedding":
        data = answer.get("data") or []
        return data[0].get("embedding") if data and isinstance(data[0], dict) else None
    return answer


class Gateway:
    """Forwarding, caching and recording for every gateway request of one server process."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.upstream = Upstream(settings.upstream_timeout)
        self.providers = ProviderDirectory(
            db, settings.secret_key, settings.upstream_url, settings.upstream_api_key
        )
        self.cache = ResponseCache(db, settings.cache_ttl, settings.redis_url)
        self.in_flight = 0  # requests being answered (counted by the server's handler)
        self.recorder = Recorder(db.writer, in_flight=lambda: self.in_flight)
        self._signers: dict[str, Signer] = {}  # by API key: signing then costs one HMAC update

    async def target(self, project_id: int, context: Context) -> Target:
        """Where a request that is not a model call goes (the chosen provider, else the default)."""
        return (await self.providers.project(project_id, context.provider)).target(context.provider)

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
            signer = self._signers[api_key] = Signer(api_key)
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
        await self.upstream.aclose()
