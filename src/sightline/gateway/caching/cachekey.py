"""Cache keys: an exact match on the endpoint and the canonical JSON of the request.

Left out of the key: ``stream`` and ``stream_options`` (a streamed request is answered from the
same entry, replayed as a stream), fields that name the caller rather than shape the answer
(``user``, ``safety_identifier``, ``metadata``, ``store``) and the AI-Eye ``openaikey_id``.
Object keys are sorted, so the order a client writes its fields in does not matter.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

__all__ = ["CACHEABLE_KINDS", "cache_key", "normalize_endpoint"]

CACHEABLE_KINDS = frozenset({"chat", "completion", "embedding"})
_NOT_IN_KEY = frozenset(
    {"stream", "stream_options", "user", "safety_identifier", "metadata", "store", "openaikey_id"}
)


def normalize_endpoint(endpoint: str) -> str:
    """``v1/chat/completions/``, ``/chat/completions`` → ``chat/completions``."""
    endpoint = endpoint.strip("/")
    return endpoint[3:] if endpoint.startswith("v1/") else endpoint


def cache_key(project_id: int, endpoint: str, body: dict[str, Any]) -> str:
    """The key of a request's cache entry (hex SHA-256), the same for every server process."""
    material = {k: v for k, v in body.items() if k not in _NOT_IN_KEY}
    digest = hashlib.sha256(b"%d\n%s\n" % (project_id, normalize_endpoint(endpoint).encode()))
    digest.update(orjson.dumps(material, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS))
    return digest.hexdigest()
