"""A local OpenAI-compatible server for the gateway's tests and benchmark: the one stand-in allowed.

Plain asyncio + httptools (no framework), so it answers in a few microseconds and is never the
bottleneck of a benchmark. It runs in a thread of the test process (:class:`FakeUpstream`) or as a
process of its own (``python tests/gateway/upstream.py --port 9001 --delay-ms 20``).

What it answers:

* ``POST /v1/chat/completions``, ``/v1/completions`` (plain or ``stream: true``, honouring
  ``stream_options.include_usage``), ``/v1/embeddings``, ``/v1/edits`` (the legacy endpoint);
  ``GET /v1/models``, ``GET /v1/files/{id}/content`` (16 KiB of bytes).
* Each answer is numbered (``reply #N``), so a test tells a cached answer from a fresh one.
* Controls (request headers): ``x-fake-delay`` seconds before answering, ``x-fake-chunk-delay``
  seconds between stream chunks, ``x-fake-status`` an error status to answer in OpenAI's error shape.
* Every request is kept in :attr:`FakeUpstream.requests` (method, path, headers, parsed body).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httptools
import orjson

__all__ = ["FakeUpstream", "Received"]

_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    401: b"Unauthorized",
    404: b"Not Found",
    429: b"Too Many Requests",
}


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class _Config:
    delay: float = 0.0
    keep: bool = True
    requests: list[Received] = field(default_factory=list)
    count: int = 0
    open_streams: int = 0
    closed_streams: int = 0


def _words(messages: Any) -> int:
    if isinstance(messages, str):
        return len(messages.split())
    total = 0
    for m in messages or ():
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            total += len(content.split())
    return total


def _reply(n: int, body: dict[str, Any]) -> str:
    words = int(body.get("max_tokens") or 6)
    return " ".join([f"reply #{n}"] + ["word"] * max(words - 2, 0))


class _Protocol(asyncio.Protocol):
    def __init__(self, config: _Config) -> None:
        self.config = config
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url, self.headers, self.body = b"", {}, bytearray()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode().lower()] = value.decode()

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        method = self.parser.get_method().decode()
        path = self.url.decode().split("?")[0]
        try:
            body = orjson.loads(self.body) if self.body else None
        except orjson.JSONDecodeError:
            body = None
        cfg = self.config
        cfg.count += 1
        if cfg.keep:
            cfg.requests.append(Received(method, path, dict(self.headers), body))
        delay = float(self.headers.get("x-fake-delay", cfg.delay))
        status = int(self.headers.get("x-fake-status", 200))
        chunk_delay = float(self.headers.get("x-fake-chunk-delay", 0))
        args = (cfg.count, method, path, body, status, chunk_delay)
        if delay <= 0 and not (isinstance(body, dict) and body.get("stream")):
            self._answer(*args)
            return
        task = asyncio.get_running_loop().create_task(self._later(delay, args))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _later(self, delay: float, args: tuple[Any, ...]) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        if self.closed:
            return
        n, method, path, body, status, chunk_delay = args
        if status == 200 and isinstance(body, dict) and body.get("stream"):
            await self._stream(n, path, body, chunk_delay)
        else:
            self._answer(*args)

    # answers
    def _send(self, status: int, payload: bytes, content_type: bytes = b"application/json") -> None:
        assert self.transport is not None
        head = b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\nx-request-id: req_%d\r\n\r\n" % (
            status,
            _REASONS.get(status, b"Error"),
            content_type,
            len(payload),
            self.config.count,
        )
        self.transport.write(head + payload)

    def _answer(self, n: int, method: str, path: str, body: Any, status: int, _chunk_delay: float) -> None:
        if status != 200:
            error = {
                "message": f"fake upstream error {status}",
                "type": "fake_error",
                "param": None,
                "code": f"fake_{status}",
            }
            self._send(status, orjson.dumps({"error": error}))
            return
        if method == "GET" and path.endswith("/models"):
            models = [
                {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in ("gpt-4o-mini", "x")
            ]
            self._send(200, orjson.dumps({"object": "list", "data": models}))
            return
        if method == "GET" and path.endswith("/content"):  # a file's bytes, as GET /v1/files/{id}/content
            self._send(200, bytes(range(256)) * 64, b"application/octet-stream")
            return
        if not isinstance(body, dict):
            self._send(
                400,
                orjson.dumps(
                    {
                        "error": {
                            "message": "body must be JSON",
                            "type": "invalid_request_error",
                            "param": None,
                            "code": None,
                        }
                    }
                ),
            )
            return
        model = body.get("model", "gpt-4o-mini")
        if path.endswith("/chat/completions"):
            text = _reply(n, body)
            prompt, completion = _words(body.get("messages")), len(text.split())
            answer = {
                "id": f"chatcmpl-{n}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            }
        elif path.endswith("/completions"):
            text = _reply(n, body)
            prompt, completion = _words(body.get("prompt")), len(text.split())
            answer = {
                "id": f"cmpl-{n}",
                "object": "text_completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            }
        elif path.endswith("/edits"):  # the legacy edits endpoint: choices of text, as completions
            text = _reply(n, body)
            prompt, completion = (
                _words(body.get("input")) + _words(body.get("instruction")),
                len(text.split()),
            )
            answer = {
                "object": "edit",
                "created": int(time.time()),
                "choices": [{"index": 0, "text": text}],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            }
        elif path.endswith("/embeddings"):
            inputs = body.get("input")
            items = inputs if isinstance(inputs, list) else [inputs]
            tokens = sum(len(str(i).split()) for i in items)
            answer = {
                "object": "list",
                "model": model,
                "data": [
                    {"object": "embedding", "index": i, "embedding": [0.1 * (i + 1)] * 8}
                    for i in range(len(items))
                ],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        else:
            self._send(
                404,
                orjson.dumps(
                    {
                        "error": {
                            "message": f"no route {path}",
                            "type": "invalid_request_error",
                            "param": None,
                            "code": None,
                        }
                    }
                ),
            )
            return
        self._send(200, orjson.dumps(answer))

    async def _stream(self, n: int, path: str, body: dict[str, Any], chunk_delay: float) -> None:
        assert self.transport is not None
        chat = path.endswith("/chat/completions")
        model = body.get("model", "gpt-4o-mini")
        text = _reply(n, body)
        pieces = [w + " " for w in text.split(" ")]
        pieces[-1] = pieces[-1].rstrip()
        prompt = _words(body.get("messages") if chat else body.get("prompt"))
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {
            "id": f"chatcmpl-{n}" if chat else f"cmpl-{n}",
            "created": int(time.time()),
            "model": model,
            "object": "chat.completion.chunk" if chat else "text_completion",
        }
        self.transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
            b"x-request-id: req_%d\r\n\r\n" % self.config.count
        )
        self.config.open_streams += 1

        def event(payload: dict[str, Any] | None) -> None:
            assert self.transport is not None
            data = b"data: " + (orjson.dumps(payload) if payload is not None else b"[DONE]") + b"\n\n"
            self.transport.write(b"%x\r\n%s\r\n" % (len(data), data))

        try:
            for i, piece in enumerate(pieces):
                if self.closed:
                    return
                if chat:
                    delta: dict[str, Any] = {"content": piece}
                    if i == 0:
                        delta["role"] = "assistant"
                    choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": None}
                else:
                    choice = {"index": 0, "text": piece, "finish_reason": None}
                event({**base, "choices": [choice], **({"usage": None} if usage else {})})
                if chunk_delay:
                    await asyncio.sleep(chunk_delay)
            last: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
            last.update({"delta": {}} if chat else {"text": ""})
            event({**base, "choices": [last], **({"usage": None} if usage else {})})
            if usage:
                completion = len(text.split())
                event(
                    {
                        **base,
                        "choices": [],
                        "usage": {
                            "prompt_tokens": prompt,
                            "completion_tokens": completion,
                            "total_tokens": prompt + completion,
                        },
                    }
                )
            event(None)
            self.transport.write(b"0\r\n\r\n")
        finally:
            self.config.closed_streams += 1


class FakeUpstream:
    """The fake upstream in a background thread of this process, on a free port of 127.0.0.1."""

    def __init__(self, *, delay: float = 0.0, keep: bool = True) -> None:
        self.config = _Config(delay=delay, keep=keep)
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The base URL an OpenAI client would use (ends with ``/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[Received]:
        return self.config.requests

    @property
    def open_streams(self) -> int:
        return self.config.open_streams - self.config.closed_streams

    def start(self) -> FakeUpstream:
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                self._loop.create_server(lambda: _Protocol(self.config), "127.0.0.1", 0)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-upstream", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    config = _Config(delay=args.delay_ms / 1000, keep=False)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Protocol(config), "127.0.0.1", args.port, backlog=4096)
        async with server:
            await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
