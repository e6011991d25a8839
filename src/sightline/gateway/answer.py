"""What the gateway answers a request with: status, headers, and a body that is whole or streamed.

The route sends it in its own way (raw ASGI messages for ``/v1``, the AI-Eye JSON for
``/api/openai``) and then calls :meth:`Answer.finish`, which caches and records the call::

    answer = await gateway.handle(...)              # or gateway.model_call(...)
    if answer.body is not None:
        ... send answer.status, answer.headers + answer.sightline, answer.body ...
    else:
        closing = await answer.relay(write)         # chunk by chunk; answer.leave() if the caller goes
        ... send closing, unless it is None (the answer broke off: leave it unfinished) ...
    answer.finish()
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from ..errors import UpstreamError
from .call import Call
from .forwarding.sse import StreamRelay
from .forwarding.upstream import UpstreamResponse

__all__ = ["Answer", "Headers"]

log = logging.getLogger(__name__)

Headers = list[tuple[bytes, bytes]]


class Answer:
    """An answer to send: ``body`` when it is whole, else streamed through :meth:`relay`."""

    __slots__ = ("_done", "_finish", "_left", "_response", "body", "call", "headers", "sightline", "status")

    def __init__(
        self,
        status: int,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes | None,
        *,
        call: Call | None = None,
        sightline: Headers | None = None,
        response: UpstreamResponse | None = None,
        finish: Callable[[], None] | None = None,
    ) -> None:
        self.status = status
        self.headers = list(headers)  # the content headers (the upstream's, or the gateway's own)
        self.sightline: Headers = sightline or []  # the X-Sightline-* headers of a model call
        self.body = body
        self.call = call  # None when nothing is recorded (a request that is not a model call)
        self._response = response
        self._finish = finish
        self._left = self._done = False

    async def relay(self, write: Callable[[bytes], Awaitable[None]]) -> bytes | None:
        """Pass the upstream's stream on through ``write`` as it arrives.

        Answers the last bytes to send (the answer is then complete), or ``None`` when it must be
        left unfinished: the upstream broke off (so the caller sees an error rather than a stream
        that merely ended early), or the caller left.
        """
        response, call = self._response, self.call
        assert response is not None, "a whole answer has nothing to relay"
        relay = StreamRelay(call.hide_usage) if call is not None else None
        broken = False
        try:
            async for chunk in response.chunks():
                out = relay.feed(chunk) if relay is not None else chunk
                if out:
                    if call is not None and call.first is None:
                        call.first = time.perf_counter()
                    await write(out)
                if self._left:
                    break
        except UpstreamError as exc:
            if not self._left:
                broken = True
                if call is not None:
                    call.failed(exc.error_type, exc.message, exc.status_code)
                else:
                    log.warning("an upstream answer broke off: %s", exc.message)
        finally:
            self._done = True
            response.close()
        if call is not None and relay is not None:
            call.events = relay.events
            if self._left:
                call.failed(
                    "incomplete_stream",
                    f"the caller closed the stream after {relay.forwarded} chunks, before it ended",
                )
        if self._left or broken:
            return None
        return relay.flush() if relay is not None else b""

    def leave(self) -> None:
        """The caller went away: stop reading the upstream, which ends its request too."""
        if not self._done:
            self._left = True
            if self._response is not None:
                self._response.close()

    def finish(self) -> None:
        """The answer has been sent (or given up): cache and record the call, in the background."""
        if self._finish is not None:
            finish, self._finish = self._finish, None
            finish()
