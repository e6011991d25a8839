"""Talking to the model provider: one pooled HTTP client per server process (see :mod:`.httpclient`).

Each provider origin is sent with the gateway's own client, or with httpx when the proxy variables
send it through a proxy (see :mod:`.proxied`; decided once per origin). Both trust the same CAs
(``upstream_ca_bundle``, else the system's, which OpenSSL lets ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``
replace) and open at most ``max_connections`` per origin.

Failures are mapped once, here: the provider cannot be reached or breaks off →
:class:`UpstreamError` (502); it stays silent for ``timeout`` seconds → :class:`UpstreamTimeout` (504).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import UpstreamError, UpstreamTimeout
from .httpclient import ConnectError, HTTPClient, HTTPError, PoolTimeout, ReadTimeout, Response
from .proxied import ProxiedClient, ProxiedResponse, environment_proxies, proxy_for

__all__ = ["Target", "Upstream", "UpstreamResponse"]

log = logging.getLogger(__name__)

# Not passed back to the caller: hop-by-hop, or recomputed for the body as the gateway sends it,
# or set by the gateway's own server.
_DROP_RESPONSE = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"content-length",
        b"date",
        b"server",
        b"proxy-authenticate",
        b"trailer",
        b"upgrade",
    }
)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a call goes: a base URL (``…/v1``) and the key to use there (never shown)."""

    base_url: str
    api_key: str | None = field(repr=False)
    provider: str | None = None
    provider_id: int | None = None

    def url(self, endpoint: str, query: bytes = b"") -> str:
        url = f"{self.base_url}/{endpoint}"
        return f"{url}?{query.decode('latin-1')}" if query else url


class UpstreamResponse:
    """An answer of the provider: status and headers at once, the body read or streamed on demand."""

    __slots__ = ("_response", "content_type", "headers", "request_id", "status")

    def __init__(self, response: Response | ProxiedResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers = [(k, v) for k, v in response.headers if k not in _DROP_RESPONSE]
        content_type = response.header(b"content-type") or b""
        self.content_type = content_type.partition(b";")[0].strip().lower().decode("latin-1")
        request_id = response.header(b"x-request-id")
        self.request_id = request_id.decode("latin-1") if request_id is not None else None

    async def read(self) -> bytes:
        """The whole body (then the connection goes back to the pool)."""
        try:
            return await self._response.read()
        except ReadTimeout:
            raise UpstreamTimeout("the upstream stopped sending its answer") from None
        except HTTPError as exc:
            raise UpstreamError(f"the upstream broke off its answer: {exc}") from None

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as the provider sends it, chunk by chunk."""
        try:
            async for chunk in self._response.chunks():
                yield chunk
        except ReadTimeout:
            raise UpstreamTimeout("the upstream stopped sending its stream") from None
        except HTTPError as exc:
            raise UpstreamError(f"the upstream broke off its stream: {exc}") from None

    def close(self) -> None:
        """Stop reading: a stream not read to its end closes its connection, which ends the request."""
        self._response.close()


class Upstream:
    """The HTTP clients shared by every request of this process.

    ``ca_bundle``: a PEM file of the CAs to trust instead of the system's; ``max_connections``: most
    connections open to one origin at once; ``trust_env``: whether the proxy variables are honoured.
    """

    def __init__(
        self,
        timeout: float,
        *,
        ca_bundle: Path | None = None,
        max_connections: int | None = None,
        trust_env: bool = True,
    ) -> None:
        self._timeout = timeout
        self._connect_timeout = min(timeout, 30.0)
        self._max_connections = max_connections
        context = ssl.create_default_context(cafile=str(ca_bundle)) if ca_bundle is not None else None
        self._client = HTTPClient(
            read_timeout=timeout,
            connect_timeout=self._connect_timeout,
            max_connections=max_connections,
            ssl_context=context,
        )
        proxies = environment_proxies() if trust_env else {}
        # Empty unless some proxy is named (NO_PROXY alone changes nothing): the fast path then skips routing.
        self._proxies = proxies if proxies.keys() - {"no"} else {}
        # By origin, once the proxies are known: the direct client or the one through its proxy.
        self._routes: dict[str, HTTPClient | ProxiedClient] = {}

    def _route(self, url: str) -> HTTPClient | ProxiedClient:
        scheme, _, rest = url.partition("://")
        origin = f"{scheme}://{rest.partition('/')[0]}"
        client = self._routes.get(origin)
        if client is None:
            proxy = proxy_for(origin, self._proxies)
            if proxy is None:
                client = self._client
            else:
                client = ProxiedClient(
                    origin,
                    proxy,
                    read_timeout=self._timeout,
                    connect_timeout=self._connect_timeout,
                    max_connections=self._max_connections,
                    ssl_context=self._client.ssl_context(),
                )
                log.info("calls to %s go through the proxy %s", origin, client.proxy)
            self._routes[origin] = client
        return client

    async def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> UpstreamResponse:
        """Send a request; answers once the status and headers are in."""
        client = self._route(url) if self._proxies else self._client
        try:
            return UpstreamResponse(await client.request(method, url, headers, body))
        except ReadTimeout:
            raise UpstreamTimeout(f"the upstream did not answer within {self._timeout:g} s") from None
        except PoolTimeout as exc:
            log.warning("upstream connections all busy (SIGHTLINE_UPSTREAM_MAX_CONNECTIONS): %s", exc)
            raise UpstreamError(f"the upstream cannot be reached ({exc})") from None
        except ConnectError as exc:
            log.warning("upstream unreachable: %s", exc)
            raise UpstreamError(f"the upstream cannot be reached ({exc})") from None
        except HTTPError as exc:
            raise UpstreamError(f"the upstream failed to answer: {exc}") from None

    async def aclose(self) -> None:
        proxied = {client for client in self._routes.values() if client is not self._client}
        self._routes.clear()
        for client in proxied:
            await client.aclose()
        await self._client.aclose()
