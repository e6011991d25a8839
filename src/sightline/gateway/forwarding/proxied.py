"""Provider origins behind a forward proxy: the standard proxy variables, and httpx to go through them.

The gateway's own client (:mod:`.httpclient`) speaks to providers directly. An origin that the
environment sends through a proxy (``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY``, unless
``NO_PROXY`` covers it; either case, lowercase first, as :mod:`urllib.request` reads them) goes
through httpx instead, which knows proxies (``CONNECT`` tunnels for ``https``, absolute URLs for
``http``, proxy credentials from the URL). The decision is made once per origin.

:class:`ProxiedClient` answers with the interface of :class:`.httpclient.Response` and raises the
client's errors, mapped from httpx's::

    httpx.PoolTimeout                                   -> PoolTimeout
    httpx.ConnectError, ConnectTimeout, ProxyError,
      UnsupportedProtocol                               -> ConnectError
    httpx.ReadTimeout, WriteTimeout                     -> ReadTimeout
    any other httpx.HTTPError                           -> ProtocolError

so :mod:`.upstream` answers 502 and 504 as it does for a direct origin.
"""

from __future__ import annotations

import asyncio
import importlib.util
import ssl
import urllib.request
from collections.abc import AsyncIterator, Mapping
from urllib.parse import urlsplit

import httpx

from .httpclient import (
    SKIPPED_HEADERS,
    ConnectError,
    HTTPError,
    PoolTimeout,
    ProtocolError,
    ReadTimeout,
)

__all__ = ["ProxiedClient", "ProxiedResponse", "environment_proxies", "proxy_for"]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def environment_proxies() -> dict[str, str]:
    """The proxies the environment names for ``http``, ``https`` and ``all``, with ``no`` (NO_PROXY).

    Raises ``ValueError`` naming the variable when a proxy cannot be used (an unknown scheme, or
    SOCKS without the ``socksio`` package), so a misconfiguration stops the server at start.
    """
    found = urllib.request.getproxies_environment()
    proxies = {scheme: url for scheme, url in found.items() if scheme in ("http", "https", "all", "no")}
    for scheme, url in proxies.items():
        if scheme == "no":
            continue
        variable = f"{scheme.upper()}_PROXY"
        try:
            parsed = httpx.Proxy(_with_scheme(url))
        except (ValueError, httpx.InvalidURL) as exc:
            raise ValueError(
                f"{variable} names a proxy the gateway cannot use ({exc}); fix it, or set "
                "SIGHTLINE_UPSTREAM_TRUST_ENV=false to ignore the proxy variables"
            ) from None
        if parsed.url.scheme.startswith("socks") and importlib.util.find_spec("socksio") is None:
            raise ValueError(
                f"{variable} names a SOCKS proxy, which needs the socksio package "
                "(pip install 'httpx[socks]'), or set SIGHTLINE_UPSTREAM_TRUST_ENV=false"
            )
    return proxies


def proxy_for(origin: str, proxies: Mapping[str, str]) -> str | None:
    """The proxy URL requests to ``origin`` (``scheme://host[:port]``) go through, or ``None``."""
    parts = urlsplit(origin)
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    # proxy_bypass_environment: NO_PROXY as urllib applies it (host or domain suffix, with or without
    # the port, "*" for all); in urllib since Python 2, though typeshed does not list it.
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if not proxy or bypass(parts.netloc, dict(proxies)):
        return None
    return _with_scheme(proxy)


def _with_scheme(url: str) -> str:
    return url if "://" in url else f"http://{url}"  # "proxy:3128", as curl and httpx take it


def _mapped(exc: httpx.HTTPError, where: str) -> HTTPError:
    message = f"{where}: {str(exc) or type(exc).__name__}"
    if isinstance(exc, httpx.PoolTimeout):
        return PoolTimeout(message)
    if isinstance(
        exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.ProxyError | httpx.UnsupportedProtocol
    ):
        return ConnectError(message)
    if isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout):
        return ReadTimeout(message)
    return ProtocolError(message)


class ProxiedResponse:
    """An answer through the proxy, read like :class:`.httpclient.Response` (bytes as sent: no decoding)."""

    __slots__ = ("_closing", "_response", "_where", "headers", "status")

    def __init__(self, response: httpx.Response, where: str, closing: set[asyncio.Task[None]]) -> None:
        self._response = response
        self._where = where
        self._closing = closing
        self.status = response.status_code
        self.headers = [(name.lower(), value) for name, value in response.headers.raw]

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    async def read(self) -> bytes:
        """The whole body (the connection then goes back to the pool)."""
        return b"".join([chunk async for chunk in self.chunks()])

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, chunk by chunk."""
        try:
            async for chunk in self._response.aiter_raw():
                yield chunk
        except httpx.HTTPError as exc:
            raise _mapped(exc, self._where) from None

    def close(self) -> None:
        """Stop reading. An answer not read to its end closes its connection (ending the request)."""
        if self._response.is_closed:
            return
        try:
            task = asyncio.get_running_loop().create_task(self._response.aclose())
        except RuntimeError:  # no event loop left: the process is ending
            return
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


class ProxiedClient:
    """Requests to one origin through one proxy, on at most ``max_connections`` connections."""

    def __init__(
        self,
        origin: str,
        proxy: str,
        *,
        read_timeout: float,
        connect_timeout: float,
        max_connections: int | None,
        ssl_context: ssl.SSLContext,
        idle_seconds: float = 30.0,
    ) -> None:
        given = httpx.Proxy(proxy)
        if given.url.scheme == "https":  # TLS to the proxy itself: trust the same CAs
            given = httpx.Proxy(proxy, ssl_context=ssl_context)
        self.proxy = str(given.url)  # without its credentials: fit for a log
        self._where = f"{urlsplit(origin).netloc} through the proxy {given.url.host}"
        self._closing: set[asyncio.Task[None]] = set()  # answers closing in the background (kept from GC)
        # One client per origin, so that max_connections caps each origin as the direct client does.
        # trust_env=False: the proxy is chosen here, and the CAs are the context's (not certifi's).
        self._client = httpx.AsyncClient(
            proxy=given,
            verify=ssl_context,
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout, pool=connect_timeout),
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                keepalive_expiry=idle_seconds,
            ),
        )

    async def request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> ProxiedResponse:
        """Send a request; answers once the status and headers are in (read the body from the answer)."""
        sent = [(name, value) for name, value in headers.items() if name.lower() not in SKIPPED_HEADERS]
        sent.append(("Accept-Encoding", "identity"))
        if body is None and method in _BODY_METHODS:
            body = b""  # Content-Length: 0, as the direct client sends
        # Built as is rather than by client.build_request, which would add httpx's default headers.
        request = httpx.Request(method, url, headers=sent, content=body)
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise _mapped(exc, self._where) from None
        return ProxiedResponse(response, self._where, self._closing)

    async def aclose(self) -> None:
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        await self._client.aclose()
