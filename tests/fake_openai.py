"""A local OpenAI-compatible server for tests and benchmarks: the one stand-in for the model provider.

Run it as ``python tests/fake_openai.py [--port P]`` (it prints ``PORT=<port>`` once it listens), or
use :func:`serve` / :class:`FakeOpenAI` from tests. It answers ``/v1/chat/completions``,
``/v1/completions``, ``/v1/embeddings`` and ``/v1/models`` like OpenAI, including streams with a
usage chunk when ``stream_options.include_usage`` is set.

Behaviour is steered per request by headers (or by the model name, for clients that cannot set
headers):

=====================  =====================  ================================================
Header                 Model name             Effect
=====================  =====================  ================================================
x-fake-status: 429     error-429              answer with that status in OpenAI's error shape
x-fake-delay: 0.05     slow (0.05 s)          seconds between stream chunks
x-fake-first-delay: 1  —                      seconds before the first byte
x-fake-reply: text     —                      the assistant's reply (default: echoes the prompt)
x-fake-fail-after: 3   —                      a stream breaks off after that many chunks
x-fake-tool: name      tool-call              answer with a call of tool ``name``
=====================  =====================  ================================================

``GET /fake/requests`` returns the recent request bodies (newest last); ``DELETE`` clears them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import json
import os
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

_requests: deque[dict[str, Any]] = deque(maxlen=500)
_ids = itertools.count(1)


def _words(text: str) -> list[str]:
    return text.split()


def _prompt_text(body: dict[str, Any]) -> str:
    if "messages" in body:
        for message in reversed(body["messages"]):
            content = message.get("content")
            if message.get("role") == "user" and isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        return ""
    prompt = body.get("prompt", "")
    return prompt if isinstance(prompt, str) else " ".join(map(str, prompt))


def _prompt_tokens(body: dict[str, Any]) -> int:
    if "messages" in body:
        return sum(len(_words(str(m.get("content") or ""))) + 3 for m in body["messages"])
    return max(1, len(_words(_prompt_text(body))))


class _Steer:
    def __init__(self, request: Request, body: dict[str, Any]) -> None:
        h = request.headers
        model = str(body.get("model", ""))
        self.status = int(h.get("x-fake-status") or (model[6:9] if model.startswith("error-") else 0) or 0)
        self.delay = float(h.get("x-fake-delay") or (0.05 if "slow" in model else 0))
        self.first_delay = float(h.get("x-fake-first-delay") or 0)
        self.fail_after = int(h.get("x-fake-fail-after") or -1)
        self.tool = h.get("x-fake-tool") or ("get_weather" if model == "tool-call" else None)
        self.reply = h.get("x-fake-reply") or f"Fake reply to: {_prompt_text(body)}"


def _usage(body: dict[str, Any], completion: int) -> dict[str, Any]:
    prompt = _prompt_tokens(body)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def _error(status: int) -> JSONResponse:
    kinds = {
        400: "invalid_request_error",
        401: "authentication_error",
        404: "not_found_error",
        429: "rate_limit_error",
    }
    return JSONResponse(
        {
            "error": {
                "message": f"Fake upstream error {status}",
                "type": kinds.get(status, "server_error"),
                "param": None,
                "code": "rate_limit_exceeded" if status == 429 else None,
            }
        },
        status_code=status,
        headers={"x-request-id": f"req_{next(_ids)}", "retry-after-ms": "10"},
    )


async def _read(request: Request) -> dict[str, Any]:
    body = json.loads(await request.body() or b"{}")
    _requests.append({"path": request.url.path, "body": body, "headers": dict(request.headers)})
    return body


def _sse(data: Any) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


async def _stream(chunks: Iterator[Any], steer: _Steer) -> AsyncIterator[bytes]:
    if steer.first_delay:
        await asyncio.sleep(steer.first_delay)
    for n, chunk in enumerate(chunks):
        if n == steer.fail_after:
            yield _sse({"error": {"message": "Fake stream failure", "type": "server_error"}})
            return
        if n and steer.delay:
            await asyncio.sleep(steer.delay)
        yield _sse(chunk)
    yield b"data: [DONE]\n\n"


def _streaming(chunks: Iterator[Any], steer: _Steer, request_id: str) -> StreamingResponse:
    return StreamingResponse(
        _stream(chunks, steer), media_type="text/event-stream", headers={"x-request-id": request_id}
    )


_ROLES = ("system", "assistant", "user", "function", "tool", "developer")


def _bad_role(body: dict[str, Any]) -> JSONResponse | None:
    """OpenAI's 400 for a message whose role it does not take (the libretto document's "ai", say)."""
    for i, message in enumerate(body.get("messages") or ()):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in _ROLES:
            supported = ", ".join(repr(r) for r in _ROLES)
            return JSONResponse(
                {
                    "error": {
                        "message": f"Invalid value: {role!r}. Supported values are: {supported}.",
                        "type": "invalid_request_error",
                        "param": f"messages[{i}].role",
                        "code": "invalid_value",
                    }
                },
                status_code=400,
            )
    return None


async def chat_completions(request: Request) -> Response:
    body = await _read(request)
    steer = _Steer(request, body)
    if steer.status:
        return _error(steer.status)
    refused = _bad_role(body)
    if refused is not None:
        return refused
    model, n = body.get("model", "gpt-4o-mini"), int(body.get("n") or 1)
    cid, created, rid = f"chatcmpl-{next(_ids)}", int(time.time()), f"req_{next(_ids)}"
    words = _words(steer.reply)
    tool_call = None
    if steer.tool:
        arguments = json.dumps({"city": "Paris"})
        tool_call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": steer.tool, "arguments": arguments},
        }
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    if body.get("stream"):

        def chunks() -> Iterator[Any]:
            base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model}
            extra = {"usage": None} if include_usage else {}
            for i in range(n):
                first = {"role": "assistant", "content": ""}
                yield {**base, "choices": [{"index": i, "delta": first, "finish_reason": None}], **extra}
            if tool_call:
                delta = {"tool_calls": [{"index": 0, **tool_call}]}
                yield {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}], **extra}
            else:
                for k, word in enumerate(words):
                    piece = word if k == 0 else " " + word
                    for i in range(n):
                        delta = {"content": piece}
                        yield {
                            **base,
                            "choices": [{"index": i, "delta": delta, "finish_reason": None}],
                            **extra,
                        }
            reason = "tool_calls" if tool_call else "stop"
            for i in range(n):
                yield {**base, "choices": [{"index": i, "delta": {}, "finish_reason": reason}], **extra}
            if include_usage:
                yield {**base, "choices": [], "usage": _usage(body, len(words) * n)}

        return _streaming(chunks(), steer, rid)
    if steer.first_delay:
        await asyncio.sleep(steer.first_delay)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if tool_call else steer.reply,
        "refusal": None,
    }
    if tool_call:
        message["tool_calls"] = [tool_call]
    choices = [
        {
            "index": i,
            "message": message,
            "finish_reason": "tool_calls" if tool_call else "stop",
            "logprobs": None,
        }
        for i in range(n)
    ]
    return JSONResponse(
        {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": choices,
            "usage": _usage(body, len(words) * n),
            "system_fingerprint": "fp_fake",
        },
        headers={"x-request-id": rid},
    )


async def completions(request: Request) -> Response:
    body = await _read(request)
    steer = _Steer(request, body)
    if steer.status:
        return _error(steer.status)
    model = body.get("model", "gpt-3.5-turbo-instruct")
    cid, created, rid = f"cmpl-{next(_ids)}", int(time.time()), f"req_{next(_ids)}"
    words = _words(steer.reply)
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    if body.get("stream"):

        def chunks() -> Iterator[Any]:
            base = {"id": cid, "object": "text_completion", "created": created, "model": model}
            for k, word in enumerate(words):
                piece = word if k == 0 else " " + word
                yield {
                    **base,
                    "choices": [{"index": 0, "text": piece, "finish_reason": None, "logprobs": None}],
                }
            yield {**base, "choices": [{"index": 0, "text": "", "finish_reason": "stop", "logprobs": None}]}
            if include_usage:
                yield {**base, "choices": [], "usage": _usage(body, len(words))}

        return _streaming(chunks(), steer, rid)
    return JSONResponse(
        {
            "id": cid,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "text": steer.reply, "finish_reason": "stop", "logprobs": None}],
            "usage": _usage(body, len(words)),
        },
        headers={"x-request-id": rid},
    )


async def embeddings(request: Request) -> Response:
    body = await _read(request)
    steer = _Steer(request, body)
    if steer.status:
        return _error(steer.status)
    inputs = body.get("input")
    items = inputs if isinstance(inputs, list) and inputs and isinstance(inputs[0], str | list) else [inputs]
    dims = int(body.get("dimensions") or 8)
    data = []
    for i, item in enumerate(items):
        digest = hashlib.sha256(json.dumps(item).encode()).digest()
        vector = [digest[k % 32] / 255 for k in range(dims)]
        if body.get("encoding_format") == "base64":
            import base64
            import struct

            encoded: Any = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        else:
            encoded = vector
        data.append({"object": "embedding", "index": i, "embedding": encoded})
    tokens = sum(len(str(item).split()) for item in items)
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "model": body.get("model", "text-embedding-3-small"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        },
        headers={"x-request-id": f"req_{next(_ids)}"},
    )


async def models(request: Request) -> Response:
    return JSONResponse(
        {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model", "owned_by": "fake"}]}
    )


async def recorded(request: Request) -> Response:
    if request.method == "DELETE":
        _requests.clear()
        return JSONResponse({"cleared": True})
    return JSONResponse(list(_requests))


app = Starlette(
    routes=[
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/fake/requests", recorded, methods=["GET", "DELETE"]),
    ]
)


class FakeOpenAI:
    """A fake OpenAI server in a child process; ``base_url`` ends in ``/v1``."""

    def __init__(self, port: int = 0) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._process = subprocess.Popen(
            [sys.executable, __file__, "--port", str(port)], stdout=subprocess.PIPE, text=True, env=env
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.startswith("PORT="):
            self._process.kill()
            raise RuntimeError(f"fake OpenAI server did not start: {line!r}")
        self.port = int(line.strip().split("=", 1)[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.url}/v1"
        _wait_listening(self.port)

    def requests(self) -> list[dict[str, Any]]:
        """The requests the server received (newest last)."""
        import httpx

        return list(httpx.get(f"{self.url}/fake/requests").json())

    def clear(self) -> None:
        """Forget the recorded requests."""
        import httpx

        httpx.delete(f"{self.url}/fake/requests")

    def close(self) -> None:
        """Stop the server process."""
        self._process.terminate()
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()


def _wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on port {port}")


@contextlib.contextmanager
def serve(port: int = 0) -> Iterator[FakeOpenAI]:
    """Run a fake OpenAI server for the duration of the block."""
    server = FakeOpenAI(port)
    try:
        yield server
    finally:
        server.close()


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    print(f"PORT={sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
