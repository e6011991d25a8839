"""A small HTTP/1.1 client for talking to model providers: asyncio transports and httptools.

Why not a general-purpose client: most of what httpx or aiohttp spend on a request is machinery the
gateway does not use (cookies, redirects, proxies, tracing, payload registries). A request here is
one ``transport.write`` and the response is parsed by httptools, the C parser uvicorn uses. (A fast
path: ``bench/bench_fast_paths.py --only http`` measures it against httpx, docs/fast-paths.md has the
figure, and ``tests/test_fast_paths.py`` checks both send and receive the same.) What it does, and
all it does:

* ``http`` and ``https`` (TLS with the system's CA store or the given context, SNI), keep-alive
  connections pooled per origin, idle ones closed after ``idle_seconds``;
* at most ``max_connections`` open per origin: a request that finds none idle and the origin at its
  cap waits its turn (first come, first served) for one to be released or closed, up to
  ``connect_timeout`` (then :class:`PoolTimeout`);
* bodies with ``Content-Length``, chunked, or read until the server closes; read whole or streamed,
  with back-pressure (reading pauses while the caller is behind);
* ``read_timeout``: the longest silence allowed from the server (waiting for the answer or for the
  next chunk of it); a request sent on a kept-alive connection that the server had already closed
  is sent again once on a new one (nothing was answered, so nothing was done twice);
* no redirects, no cookies, no proxies, no compression (it asks for ``identity``). An origin behind
  a proxy is sent with httpx instead (:mod:`.proxied`), which answers with the same interface.

Failures raise::

    HTTPError
    ├── ConnectError        no connection (refused, unknown host, TLS failure, connect timeout)
    │   └── PoolTimeout     the origin's every allowed connection stayed busy
    ├── ReadTimeout         the server fell silent
    └── ProtocolError       the connection broke, or what came back is not HTTP/1.1
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import sys
import time
from collections.abc import AsyncIterator, Mapping
from urllib.parse import urlsplit

import httptools

__all__ = [
    "SKIPPED_HEADERS",
    "ConnectError",
    "HTTPClient",
    "HTTPError",
    "PoolTimeout",
    "ProtocolError",
    "ReadTimeout",
    "Response",
]

_PAUSE_AT = 1 << 20  # buffered body bytes at which reading pauses
# Request headers never passed on as given: the client sets them itself for the request it sends.
SKIPPED_HEADERS = frozenset(
    {"host", "content-length", "connection", "transfer-encoding", "accept-encoding", "keep-alive"}
)


class HTTPError(Exception):
    """The request failed before a complete answer arrived."""


class ConnectError(HTTPError):
    """No connection could be made (refused, unknown host, TLS failure, connect timeout)."""


class PoolTimeout(ConnectError):
    """Every connection the origin may have stayed busy for the connect timeout."""


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
        self.counted = False  # holds one of the pool's open slots (freed once, when it closes)

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
        self.free()
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
        self.free()

    def free(self) -> None:
        """Give its slot back to the pool (the connection is closed or closing)."""
        if self.counted:
            self.counted = False
            self.pool.closed()


class _Pool:
    """The connections of one origin: the idle kept-alive ones (newest on top), how many are open,
    and the requests waiting for one while ``max_open`` are.

    A waiter is handed either a released connection or, when one closes, its slot (``None``: it
    connects on it), so the count never goes above ``max_open`` and the waiters are served in turn.
    """

    def __init__(self, limit: int, idle_seconds: float, max_open: int) -> None:
        self.idle: list[_Connection] = []
        self.limit = limit
        self.idle_seconds = idle_seconds
        self.max_open = max_open
        self.open = 0  # connections counted against max_open: connecting, answering or idle
        self.waiters: collections.deque[asyncio.Future[_Connection | None]] = collections.deque()

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
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():  # else it timed out or was cancelled
                waiter.set_result(conn)
                return
        if len(self.idle) >= self.limit:
            conn.abort()
            return
        conn.idle_since = time.monotonic()
        self.idle.append(conn)

    def closed(self) -> None:
        """A counted connection closed, or a connection attempt failed: its slot is free."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes to the waiter: still counted
                return
        self.open -= 1

    def hand_back(self, given: _Connection | None) -> None:
        """What a waiter was handed but cannot use (it was cancelled meanwhile)."""
        if given is None:
            self.closed()
        else:
            self.release(given)

    def close(self) -> None:
        for conn in self.idle:
            conn.abort()
        self.idle.clear()
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectError("the HTTP client was closed"))


class _Origin:
    __slots__ = ("host", "host_header", "pool", "port", "tls")

    def __init__(self, url: str, limit: int, idle_seconds: float, max_open: int) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConnectError(f"not an http(s) URL: {url}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        default = (self.tls and self.port == 443) or (not self.tls and self.port == 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = host if default else f"{host}:{self.port}"
        self.pool = _Pool(limit, idle_seconds, max_open)


class HTTPClient:
    """Pooled keep-alive HTTP/1.1 connections to a few origins (the model providers)."""

    def __init__(
        self,
        *,
        read_timeout: float,
        connect_timeout: float = 30.0,
        idle_seconds: float = 30.0,
        keep_per_origin: int = 1024,
        max_connections: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.read_timeout = read_timeout
        self.connect_timeout = connect_timeout
        self.idle_seconds = idle_seconds
        self.keep_per_origin = keep_per_origin
        # None: no cap (compared all the same: one int comparison when a connection is opened)
        self.max_connections = sys.maxsize if max_connections is None else max_connections
        self._ssl = ssl_context
        self._origins: dict[str, _Origin] = {}

    def _origin(self, url: str) -> tuple[_Origin, str]:
        scheme, _, rest = url.partition("://")
        authority, slash, target = rest.partition("/")
        key = f"{scheme}://{authority}"
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = _Origin(
                key, self.keep_per_origin, self.idle_seconds, self.max_connections
            )
        return origin, slash + target if slash else "/"

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context of ``https`` origins (the system's CA store unless one was given)."""
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def _connection(self, origin: _Origin) -> _Connection:
        """An idle connection of the origin, else a new one, else (at its cap) one in turn."""
        pool = origin.pool
        while True:
            conn = pool.take()
            if conn is not None:
                return conn
            if pool.open < pool.max_open:
                pool.open += 1
                return await self._connect(origin)
            given = await self._wait(origin)
            if given is None:
                return await self._connect(origin)  # on the slot passed on
            if not given.closed:
                return given
            # The server closed it before our turn came (its slot went on as it closed): again.

    async def _wait(self, origin: _Origin) -> _Connection | None:
        """Wait for a released connection or a freed slot (``None``), up to the connect timeout."""
        pool = origin.pool
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[_Connection | None] = loop.create_future()
        pool.waiters.append(waiter)

        def expire() -> None:
            if not waiter.done():
                waiter.set_exception(
                    PoolTimeout(
                        f"all {pool.max_open} connections to {origin.host_header} stayed busy "
                        f"for {self.connect_timeout:g} s"
                    )
                )

        timer = loop.call_later(self.connect_timeout, expire)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                pool.hand_back(waiter.result())
            raise
        finally:
            timer.cancel()

    async def _connect(self, origin: _Origin) -> _Connection:
        """A new connection on a slot already counted in ``origin.pool.open`` (given back on failure)."""
        loop = asyncio.get_running_loop()
        context = self.ssl_context() if origin.tls else None
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
        except BaseException as exc:  # including cancellation: the slot was never used
            origin.pool.closed()
            if isinstance(exc, TimeoutError):
                raise ConnectError(
                    f"no connection to {origin.host_header} within {self.connect_timeout:g} s"
                ) from None
            if isinstance(exc, OSError):  # ssl.SSLError is one
                raise ConnectError(f"cannot connect to {origin.host_header}: {exc.strerror or exc}") from None
            raise
        conn.counted = True
        if conn.closed:  # lost before it was counted
            conn.free()
        return conn

    def _head(
        self, method: str, target: str, origin: _Origin, headers: Mapping[str, str], length: int | None
    ) -> bytes:
        lines = [f"{method} {target} HTTP/1.1\r\nHost: {origin.host_header}\r\n"]
        for name, value in headers.items():
            if name.lower() in SKIPPED_HEADERS:
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
            conn = await self._connection(origin)
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
