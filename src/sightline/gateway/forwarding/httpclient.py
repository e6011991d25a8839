"""A small HTTP/1.1 client for talking to model providers: asyncio transports and httptools.

Why not a general-purpose client: most of what httpx or aiohttp spend on a request is machinery the
gateway does not use (cookies, redirects, proxies, tracing, payload registries). A request here is
one ``transport.write`` and the response is parsed by httptools, the C parser uvicorn uses. (A fast
path: ``bench/bench_fast_paths.py --only http`` measures it against httpx, docs/fast-paths.md has the
figure, and ``tests/test_fast_paths.py`` checks both send and receive the same.) What it does, and
all it does:

* ``http`` and ``https`` (TLS with the system's CA store, SNI), keep-alive connections pooled per
  origin, idle ones closed after ``idle_seconds``;
* bodies with ``Content-Length``, chunked, or read until the server closes; read whole or streamed,
  with back-pressure (reading pauses while the caller is behind);
* ``read_timeout``: the longest silence allowed from the server (waiting for the answer or for the
  next chunk of it); a request sent on a kept-alive connection that the server had already closed
  is sent again once on a new one (nothing was answered, so nothing was done twice);
* no redirects, no cookies, no proxies, no compression (it asks for ``identity``).

Failures raise :class:`ConnectError`, :class:`ReadTimeout` or :class:`ProtocolError`.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from urllib.parse import urlsplit

import httptools

__all__ = ["ConnectError", "HTTPClient", "HTTPError", "ProtocolError", "ReadTimeout", "Response"]

_PAUSE_AT = 1 << 20  # buffered body bytes at which reading pauses
_SKIP = frozenset(
    {"host", "content-length", "connection", "transfer-encoding", "accept-encoding", "keep-alive"}
)


class HTTPError(Exception):
    """The request failed before a complete answer arrived."""


class ConnectError(HTTPError):
    """No connection could be made (refused, unknown host, TLS failure, connect timeout)."""


class ReadTimeout(HTTPError):
    """The server stayed silent for longer than the read timeout."""


class ProtocolError(HTTPError):
    """The connection broke, or the server sent something that is not HTTP/1.1."""


class _Stale(ProtocolError):
    """A kept-alive connection closed before any byte of the answer: safe to send again."""


class Response:
    """An answer: status and headers at once, the body read whole or streamed."""

    __slots__ = ("_chunks", "_conn", "_done", "_error", "_size", "_waiter", "_whole", "headers", "status")

    def __init__(self, conn: _Connection, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self._conn: _Connection | None = conn
        self.status = status
        self.headers = headers  # names in lowercase, values as sent
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._whole = False  # read whole: never pause reading

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    # fed by the connection

    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size > _PAUSE_AT and not self._whole and self._conn is not None:
            self._conn.pause()
        self._wake()

    def _finish(self, error: BaseException | None = None) -> None:
        self._done = True
        self._error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    # read by the caller

    async def read(self) -> bytes:
        """The whole body (the connection then goes back to the pool)."""
        self._whole = True
        if self._conn is not None:
            self._conn.resume()
        while not self._done:
            await self._wait()
        if self._error is not None:
            raise self._error
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, chunk by chunk."""
        while True:
            while self._chunks:
                data = self._chunks.popleft()
                self._size -= len(data)
                if self._size <= _PAUSE_AT // 2 and self._conn is not None:
                    self._conn.resume()
                yield data
            if self._done:
                if self._error is not None:
                    raise self._error
                return
            await self._wait()

    def close(self) -> None:
        """Stop reading. An answer not read to its end closes its connection (ending the request)."""
        conn, self._conn = self._conn, None
        if conn is not None and not self._done:
            conn.abort()
            self._finish(ProtocolError("closed before the end of the answer"))


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one request at a time, kept alive between them."""

    def __init__(self, pool: _Pool, read_timeout: float) -> None:
        self.pool = pool
        self.read_timeout = read_timeout
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.used = 0  # answers received on it
        self.idle_since = time.monotonic()
        self.last_data = 0.0
        self.sent_at = 0.0
        self.head: asyncio.Future[Response] | None = None
        self.response: Response | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_only = False
        self.delimited = False  # the body has a length or is chunked (else: until the server closes)
        self.timer: asyncio.TimerHandle | None = None
        self.paused = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.last_data = time.monotonic()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"the server sent something that is not HTTP/1.1: {exc}"))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._stop_timer()
        if self.response is not None and not self.response._done:
            if self.delimited:
                self.response._finish(
                    ProtocolError("the server closed the connection before the end of the answer")
                )
            else:
                self.response._finish()  # a body that lasts until the server closes: complete
        elif self.head is not None and not self.head.done():
            if self.used and self.last_data == 0.0:
                self.head.set_exception(_Stale("the kept-alive connection was closed by the server"))
            else:
                self.head.set_exception(ProtocolError("the server closed the connection without answering"))

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:  # an informational answer: the real one follows
            self.headers = []
            return
        names = {name for name, _ in self.headers}
        self.delimited = b"content-length" in names or b"transfer-encoding" in names or status in (204, 304)
        response = self.response = Response(self, status, self.headers)
        if self.head is not None and not self.head.done():
            self.head.set_result(response)
        if self.head_only:
            self.on_message_complete()

    def on_body(self, body: bytes) -> None:
        if self.response is not None:
            self.response._feed(body)

    def on_message_complete(self) -> None:
        response = self.response
        if response is None or response._done:
            return
        self._stop_timer()
        self.used += 1
        response._finish()
        response._conn = None
        self.response = None
        if self.head_only or not self.parser.should_keep_alive():
            self.abort()
        else:
            self.pool.release(self)

    # used by the client

    def send(self, head: bytes, body: bytes | None, head_only: bool) -> asyncio.Future[Response]:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self.head = loop.create_future()
        self.headers = []
        self.head_only = head_only
        self.last_data = 0.0
        self.sent_at = time.monotonic()
        self.transport.write(head + body if body else head)
        self._arm(loop)
        return self.head

    def _arm(self, loop: asyncio.AbstractEventLoop, delay: float | None = None) -> None:
        self.timer = loop.call_later(self.read_timeout if delay is None else delay, self._check_silence)

    def _check_silence(self) -> None:
        # Re-armed from the last byte received rather than on every byte: one timer per silence.
        self.timer = None
        if self.closed:
            return
        silent = time.monotonic() - max(self.last_data, self.sent_at)
        if silent < self.read_timeout:
            self._arm(asyncio.get_running_loop(), self.read_timeout - silent)
            return
        self._fail(ReadTimeout(f"the server sent nothing for {self.read_timeout:g} s"))
        self.abort()

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _fail(self, error: HTTPError) -> None:
        if self.head is not None and not self.head.done():
            self.head.set_exception(error)
        if self.response is not None and not self.response._done:
            self.response._finish(error)

    def pause(self) -> None:
        if not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()

    def abort(self) -> None:
        self.closed = True
        self._stop_timer()
        if self.transport is not None:
            self.transport.abort()


class _Pool:
    """Idle kept-alive connections of one origin, newest on top."""

    def __init__(self, limit: int, idle_seconds: float) -> None:
        self.idle: list[_Connection] = []
        self.limit = limit
        self.idle_seconds = idle_seconds

    def take(self) -> _Connection | None:
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()
            if conn.closed or conn.transport is None or conn.transport.is_closing():
                continue
            if now - conn.idle_since > self.idle_seconds:
                conn.abort()
                continue
            return conn
        return None

    def release(self, conn: _Connection) -> None:
        if conn.paused:
            conn.resume()
        if len(self.idle) >= self.limit:
            conn.abort()
            return
        conn.idle_since = time.monotonic()
        self.idle.append(conn)

    def close(self) -> None:
        for conn in self.idle:
            conn.abort()
        self.idle.clear()


class _Origin:
    __slots__ = ("host", "host_header", "pool", "port", "tls")

    def __init__(self, url: str, limit: int, idle_seconds: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConnectError(f"not an http(s) URL: {url}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        default = (self.tls and self.port == 443) or (not self.tls and self.port == 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = host if default else f"{host}:{self.port}"
        self.pool = _Pool(limit, idle_seconds)


class HTTPClient:
    """Pooled keep-alive HTTP/1.1 connections to a few origins (the model providers)."""

    def __init__(
        self,
        *,
        read_timeout: float,
        connect_timeout: float = 30.0,
        idle_seconds: float = 30.0,
        keep_per_origin: int = 1024,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.read_timeout = read_timeout
        self.connect_timeout = connect_timeout
        self.idle_seconds = idle_seconds
        self.keep_per_origin = keep_per_origin
        self._ssl = ssl_context
        self._origins: dict[str, _Origin] = {}

    def _origin(self, url: str) -> tuple[_Origin, str]:
        scheme, _, rest = url.partition("://")
        authority, slash, target = rest.partition("/")
        key = f"{scheme}://{authority}"
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = _Origin(key, self.keep_per_origin, self.idle_seconds)
        return origin, slash + target if slash else "/"

    async def _connect(self, origin: _Origin) -> _Connection:
        loop = asyncio.get_running_loop()
        context: ssl.SSLContext | None = None
        if origin.tls:
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(origin.pool, self.read_timeout),
                    origin.host,
                    origin.port,
                    ssl=context,
                    server_hostname=origin.host if context else None,
                ),
                self.connect_timeout,
            )
        except TimeoutError:
            raise ConnectError(
                f"no connection to {origin.host_header} within {self.connect_timeout:g} s"
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raise ConnectError(f"cannot connect to {origin.host_header}: {exc.strerror or exc}") from None
        return conn

    def _head(
        self, method: str, target: str, origin: _Origin, headers: Mapping[str, str], length: int | None
    ) -> bytes:
        lines = [f"{method} {target} HTTP/1.1\r\nHost: {origin.host_header}\r\n"]
        for name, value in headers.items():
            if name.lower() in _SKIP:
                continue
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ProtocolError(f"header {name!r} holds a line break")
            lines.append(f"{name}: {value}\r\n")
        lines.append("Accept-Encoding: identity\r\n")
        if length is not None:
            lines.append(f"Content-Length: {length}\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("latin-1")

    async def request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> Response:
        """Send a request; answers once the status and headers are in (read the body from the answer)."""
        origin, target = self._origin(url)
        length = len(body) if body is not None else (0 if method in ("POST", "PUT", "PATCH") else None)
        head = self._head(method, target, origin, headers, length)
        for attempt in (1, 2):
            conn = origin.pool.take() or await self._connect(origin)
            try:
                return await conn.send(head, body, method == "HEAD")
            except _Stale:
                if attempt == 2:
                    raise ProtocolError("the server closed the connection without answering") from None
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        for origin in self._origins.values():
            origin.pool.close()
        self._origins.clear()
        await asyncio.sleep(0)
