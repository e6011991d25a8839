"""The OpenAI-compatible gateway: upstream forwarding, response cache, streaming capture, recording.

Pure logic and an HTTP client; the server's routes (``server/routers/proxy.py`` for ``/v1`` and
``server/routers/aieye.py``) drive it. Errors it raises::

    SightlineError
     ├── InvalidInput       bad X-Sightline-* header, unknown provider
     ├── UpstreamError      (502) the provider cannot be reached or broke off
     │    └── UpstreamTimeout (504) the provider went silent for upstream_timeout seconds
     └── Unavailable        a stored provider key cannot be decrypted (secret key changed)
"""

from .cache import ResponseCache
from .cachekey import cache_key, normalize_endpoint
from .call import Call, kind_of
from .context import CACHE_CONTROLS, Context, parse_context
from .errors import openai_error
from .gateway import Gateway, RequestHeaders, answer_text, split_headers
from .sse import StreamRelay, assemble, replay
from .upstream import Target, Upstream, UpstreamResponse

__all__ = [
    "CACHE_CONTROLS",
    "Call",
    "Context",
    "Gateway",
    "RequestHeaders",
    "ResponseCache",
    "StreamRelay",
    "Target",
    "Upstream",
    "UpstreamResponse",
    "answer_text",
    "assemble",
    "cache_key",
    "kind_of",
    "normalize_endpoint",
    "openai_error",
    "parse_context",
    "replay",
    "split_headers",
]
