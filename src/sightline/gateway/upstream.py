"""Talking to the model provider: one pooled HTTP client per server process.

The client is aiohttp rather than httpx: measured through this gateway on one core, an httpx
``AsyncClient`` spent ~350 µs a request and topped out under 1,000 requests/s with 20 concurrent
requests (its pool serialises on a lock), where aiohttp spends ~130 µs and passes 9,000/s.

Failures are mapped once, here: the provider cannot be reached → :class:`UpstreamError` (502),
does not answer within ``timeout`` seconds of silence → :class:`UpstreamTimeout` (504).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import aiohttp
from yarl import URL

from ..errors import UpstreamError, UpstreamTimeout

__all__ = ["Target", "Upstream", "UpstreamResponse"]

log = logging.getLogger(__name__)

# Not passed back to the caller: hop-by-hop, or recomputed for the body as the gateway sends it
# (aiohttp undoes content-encoding), or set by the gateway's own server.
_DROP_RESPONSE = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"content-length",
        b"content-encoding",
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

    __slots__ = ("_response", "content_type", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers = [(k.lower(), v) for k, v in response.raw_headers if k.lower() not in _DROP_RESPONSE]
        self.content_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()

    @property
    def request_id(self) -> str | None:
        return self._response.headers.get("x-request-id")

    async def read(self) -> bytes:
        """The whole body (then the connection goes back to the pool)."""
        try:
            return await self._response.read()
        except TimeoutError:
            raise UpstreamTimeout("the upstream stopped sending its answer") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"the upstream broke off its answer: {type(exc).__name__}") from None
        finally:
            self._response.release()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as the provider sends it, chunk by chunk."""
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except TimeoutError:
            raise UpstreamTimeout("the upstream stopped sending its stream") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"the upstream broke off its stream: {type(exc).__name__}") from None

    def close(self) -> None:
        """Stop reading: a stream not read to its end closes its connection, which ends the request."""
        self._response.close()


class Upstream:
    """A pooled, keep-alive HTTP client shared by every request of this process."""

    def __init__(self, timeout: float, *, connections: int = 1000) -> None:
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(timeout, 30.0), sock_read=timeout)
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running event loop that will use it.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._connections, ttl_dns_cache=60, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                auto_decompress=True,
                trust_env=False,
                # A shared jar would replay one caller's upstream cookies on everyone's requests.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    def _url(self, url: str) -> URL:
        found = self._urls.get(url)
        if found is None:
            found = URL(url, encoded=True)
            if len(self._urls) > 10_000:
                self._urls.clear()
            self._urls[url] = found
        return found

    async def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> UpstreamResponse:
        """Send a request; answers once the status and headers are in."""
        client = self._client()
        target = self._url(url)
        for attempt in (1, 2):
            try:
                response = await client.request(
                    method, target, data=body, headers=headers, allow_redirects=False
                )
                return UpstreamResponse(response)
            except TimeoutError:
                raise UpstreamTimeout(
                    f"the upstream did not answer within {self._timeout.sock_read:g} s"
                ) from None
            except aiohttp.ServerDisconnectedError:
                # A pooled connection the provider had already closed: nothing was processed, try a fresh one.
                if attempt == 2:
                    raise UpstreamError("the upstream closed the connection without answering") from None
            except aiohttp.InvalidURL:
                raise UpstreamError(f"the upstream URL is not valid: {url.split('?')[0]}") from None
            except aiohttp.ClientError as exc:
                log.warning("upstream %s unreachable: %s", target.origin(), type(exc).__name__)
                raise UpstreamError(f"the upstream cannot be reached ({type(exc).__name__})") from None
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            # Let the connector's close callbacks run before the loop goes away.
            await asyncio.sleep(0)
            self._session = None
