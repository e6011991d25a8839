"""One call through the gateway, from the request's arrival to its record.

A :class:`Call` holds references and timestamps only: nothing is parsed or built for the record
while the caller waits. Once its answer has been sent, the call goes to the recorder, which turns
it into a Generation (:mod:`.capture`) between later requests.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from typing import Any

from .context import Context
from .upstream import Target

__all__ = ["Call", "IdSource", "kind_of"]

_VERSION_4 = (0x4000 << 64) | (0x8000 << 48)
_VERSION_MASK = ~((0xF000 << 64) | (0xC000 << 48))


class IdSource:
    """Random UUIDs (version 4) for generation ids, from a generator seeded once by ``os.urandom``.

    ``uuid.uuid4()`` reads ``os.urandom`` on every call, a system call that releases the GIL; on a
    busy server the event loop then waits for another thread to hand the GIL back. Ids need to be
    unique, not secret (a feedback key is signed separately). Make one source per process.
    """

    def __init__(self) -> None:
        self._rng = random.Random(os.urandom(32))

    def __call__(self) -> tuple[str, bytes]:
        """A new id: its text and its 16 bytes."""
        n = self._rng.getrandbits(128) & _VERSION_MASK | _VERSION_4
        h = f"{n:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}", n.to_bytes(16, "big")


def kind_of(endpoint: str) -> str:
    """What kind of model call an endpoint makes: chat, completion, embedding or other."""
    if endpoint.endswith("chat/completions"):
        return "chat"
    if endpoint.endswith("completions"):
        return "completion"
    if endpoint.endswith("embeddings"):
        return "embedding"
    return "other"


class Call:
    """A model call in flight or finished."""

    __slots__ = (
        "answer",
        "body",
        "cache_hit",
        "cache_key",
        "cache_mode",
        "context",
        "ended",
        "endpoint",
        "error",
        "events",
        "first",
        "generation_bytes",
        "generation_id",
        "hide_usage",
        "kind",
        "outcome",
        "project_id",
        "request_id",
        "response",
        "started",
        "status",
        "stream",
        "target",
        "wall",
    )

    def __init__(
        self,
        *,
        project_id: int,
        endpoint: str,
        body: dict[str, Any],
        context: Context,
        target: Target,
        cache_mode: str,
        stream: bool,
        hide_usage: bool,
        started: float | None = None,
        wall: float | None = None,
        generation_id: tuple[str, bytes] | None = None,
    ) -> None:
        self.project_id = project_id
        self.endpoint = endpoint
        self.kind = kind_of(endpoint)
        self.body = body
        self.context = context
        self.target = target
        self.cache_mode = cache_mode
        self.cache_key: str | None = None
        self.stream = stream
        self.hide_usage = hide_usage
        if generation_id is None:
            made = uuid.uuid4()
            generation_id = str(made), made.bytes
        self.generation_id, self.generation_bytes = generation_id
        self.started = time.perf_counter() if started is None else started
        self.wall = time.time() if wall is None else wall
        self.first: float | None = None
        self.ended: float | None = None
        self.status = 0
        self.response: bytes | None = None
        self.answer: dict[str, Any] | None = None
        self.events: list[bytes] | None = None
        self.error: dict[str, Any] | None = None
        self.outcome = "ok"
        self.cache_hit = False
        self.request_id: str | None = None

    @property
    def model(self) -> str:
        model = self.body.get("model")
        return model if isinstance(model, str) and model else "unknown"

    def failed(self, error_type: str, message: str, status: int | None = None) -> None:
        """The call ended in an error (the upstream's, or reaching it, or the caller leaving)."""
        self.outcome = "error"
        self.error = {"type": error_type, "message": message}
        if status is not None:
            self.error["statusCode"] = status
