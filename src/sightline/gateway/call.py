"""One call through the gateway, from the request's arrival to its record.

A :class:`Call` holds references and timestamps only: nothing is parsed or built for the record
while the caller waits. Once its answer has been sent, the call goes to the recorder, which turns
it into a Generation (:mod:`.capture`) between later requests.
"""

from __future__ import annotations

import time
from typing import Any

from ..ids import new_id
from .context import Context
from .forwarding.upstream import Target

__all__ = ["Call", "kind_of"]


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
            generation_id = new_id()
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
