"""The OpenAI-compatible gateway: key lookup, forwarding, response cache, streaming capture, recording.

Pure logic and an HTTP client; the server's routes (``server/routers/proxy.py`` for ``/v1`` and
``server/routers/aieye.py``) turn HTTP into calls of the one :class:`Gateway` and send its
:class:`Answer`. Errors it raises::

    SightlineError
     ├── InvalidInput        bad X-Sightline-* header, body that is not JSON, unknown provider
     ├── AuthenticationError (401) no bearer token, or an unknown or revoked API key
     ├── UpstreamError       (502) the provider cannot be reached or broke off
     │    └── UpstreamTimeout (504) the provider went silent for upstream_timeout seconds
     └── Unavailable         a stored provider key cannot be decrypted (secret key changed)
"""

from .answer import Answer
from .caching.cache import ResponseCache
from .caching.cachekey import cache_key, normalize_endpoint
from .call import Call, kind_of
from .context import CACHE_CONTROLS, Context, RequestHeaders, parse_context, split_headers
from .errors import openai_error
from .forwarding.sse import StreamRelay, assemble, replay
from .forwarding.upstream import Target, Upstream, UpstreamResponse
from .gateway import Gateway, answer_text
from .keys import Caller, KeyLookup, bearer_token

__all__ = [
    "CACHE_CONTROLS",
    "Answer",
    "Call",
    "Caller",
    "Context",
    "Gateway",
    "KeyLookup",
    "RequestHeaders",
    "ResponseCache",
    "StreamRelay",
    "Target",
    "Upstream",
    "UpstreamResponse",
    "answer_text",
    "assemble",
    "bearer_token",
    "cache_key",
    "kind_of",
    "normalize_endpoint",
    "openai_error",
    "parse_context",
    "replay",
    "split_headers",
]
