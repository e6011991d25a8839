"""Delivery of records to the Sightline server: one batch per request, one connection, retries.

A batch is turned into JSON in one pass (one call per record cost 40% more). When ``orjson`` is
installed it writes the JSON: about 0.6 µs a chat record against 10 µs for the standard library
(which the SDK falls back to, and which writes what orjson refuses: integers past 64 bits, lone
surrogates). A batch is gzipped only when that pays: when the server is on another machine (on this
one, compressing costs CPU and saves no time) and the body is over 1 KiB. Level 1: it costs about half
of level 5's CPU for bodies a quarter larger (``bench/bench_sdk.py`` prints both).

Network errors, 5xx and 429 are retried with exponential backoff and jitter (honouring
``Retry-After``) until the destination's ``max_retry_seconds`` run out (or the exporter closes); any
other 4xx is final. The server answers each item of a batch on its own, so items it refused are
counted as rejected while the rest of the batch is delivered. What is given up on is counted as
failed, or handed to the ``give_up`` callback when there is one (the spool keeps it).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import random
import time
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

try:  # not a dependency of the SDK: used when the application has it
    import orjson
except ImportError:  # pragma: no cover - the test environment has it
    orjson = None  # type: ignore[assignment]

from sightline import __version__
from sightline.sdk._config import Destination
from sightline.sdk._guard import Throttle, logger

__all__ = ["FEEDBACK_KEY", "Counters", "Sender", "compresses", "dumps", "dumps_batch", "stdlib_dumps"]

_GZIP_OVER = 1024
_GZIP_LEVEL = 1
# The server closes a connection idle for 5 s (uvicorn's default): let it go a little before.
_KEEPALIVE = 4.0
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
# What the standard library would write: datetimes and dataclasses through ``str`` as well.
_ORJSON = (
    orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
    if orjson is not None
    else 0
)
_BACKOFF_BASE = 0.25
_BACKOFF_CAP = 10.0
_RETRY_AFTER_CAP = 30.0
FEEDBACK_KEY = "feedback_key"
"""The type of an item given up on that goes to ``/api/feedback`` (its body), not to ``/api/ingest``."""


@dataclass
class Counters:
    """What happened to the records handed to the exporter (updated by the worker thread)."""

    sent: int = 0
    dropped: int = 0
    rejected: int = 0
    failed: int = 0
    retries: int = 0
    batches: int = 0
    internal_errors: int = 0
    spooled: int = 0


def dumps_batch(items: list[Any]) -> bytes:
    """``{"batch": items}`` as compact UTF-8 JSON, in one pass. Raises when an item cannot be.

    A lone surrogate (half of a broken character) becomes ``?`` rather than costing its record.
    """
    return dumps({"batch": items})


def dumps(value: Any) -> bytes:
    """One value as compact UTF-8 JSON: orjson when installed, else (or when it refuses) ``json``."""
    if orjson is not None:
        try:
            return orjson.dumps(value, default=str, option=_ORJSON)
        except TypeError:  # orjson.JSONEncodeError is one
            pass
    return stdlib_dumps(value)


def stdlib_dumps(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON by the standard library (what :func:`dumps` must agree with)."""
    return _JSON.encode(value).encode("utf-8", "replace")


def compresses(dest: Destination) -> bool:
    """Whether bodies sent to ``dest`` are gzipped: as asked, else when the server is elsewhere."""
    return dest.compress if dest.compress is not None else _remote(dest.server_url)


@functools.lru_cache(maxsize=64)
def _remote(server_url: str) -> bool:
    host = urlsplit(server_url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


_HEADERS = {"User-Agent": f"sightline-python/{__version__}", "Content-Type": "application/json"}


def _proxy(url: httpx.URL) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``, ``NO_PROXY``…), as httpx.Client would."""
    if urllib.request.proxy_bypass(url.host):
        return None
    return urllib.request.getproxies().get(url.scheme) or urllib.request.getproxies().get("all")


@functools.lru_cache(maxsize=64)
def _url(server_url: str, path: str) -> httpx.URL:
    # Parsed once, not at every post (httpx parses a str URL in Python each time).
    return httpx.URL(server_url + path)


def _retriable(status: int) -> bool:
    return status == 429 or status >= 500


def _retry_after(response: httpx.Response | None) -> float:
    if response is None:
        return 0.0
    try:
        return min(float(response.headers.get("retry-after", "0")), _RETRY_AFTER_CAP)
    except ValueError:
        return 0.0


class Sender:
    """Posts batches for the exporter thread. Not thread-safe: only that thread uses it."""

    def __init__(
        self,
        counters: Counters,
        wait: Callable[[float], bool],
        transport: httpx.BaseTransport | None = None,
        give_up: Callable[[list[Any]], None] | None = None,
    ) -> None:
        self._counters = counters
        self._wait = wait
        self._give_up = give_up
        self._given = transport
        self._transports: dict[str, httpx.BaseTransport] = {}
        self._throttle = Throttle()

    def _transport(self, url: httpx.URL) -> httpx.BaseTransport:
        """The transport for ``url``: the one given (tests), else an HTTP one through the proxy if any."""
        if self._given is not None:
            return self._given
        origin = f"{url.scheme}://{url.netloc.decode()}"
        transport = self._transports.get(origin)
        if transport is None:
            # One thread posts, one request at a time: one connection, kept alive between batches.
            transport = self._transports[origin] = httpx.HTTPTransport(
                limits=httpx.Limits(max_connections=1, keepalive_expiry=_KEEPALIVE), proxy=_proxy(url)
            )
        return transport

    def close(self) -> None:
        """Release the HTTP connections."""
        transports, self._transports = self._transports, {}
        for transport in transports.values():
            transport.close()

    def _post(self, dest: Destination, path: str, body: bytes, auth: bool) -> httpx.Response:
        # Straight to the transport, under httpx.Client: its layers (auth and redirect flows, cookies,
        # hooks, merging of URLs and headers) took about 40% of a post's CPU, and a post is sent every
        # flush interval. A test checks the server gets what httpx.Client would send.
        headers = {**_HEADERS, "Authorization": f"Bearer {dest.api_key}"} if auth else dict(_HEADERS)
        if len(body) > _GZIP_OVER and compresses(dest):
            packer = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: the gzip format
            body = packer.compress(body) + packer.flush()
            headers["Content-Encoding"] = "gzip"
        url = _url(dest.server_url, path)
        timeout = dest.request_timeout
        request = httpx.Request(
            "POST",
            url,
            headers=headers,
            content=body,
            extensions={"timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}},
        )
        response = self._transport(url).handle_request(request)
        try:
            response.read()
        finally:
            response.close()
        return response

    def _backoff(self, attempt: int, response: httpx.Response | None, deadline: float) -> bool:
        """Sleep before the next attempt; False when the retry budget is spent (or closing)."""
        ceiling = min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt)
        delay = max(ceiling / 2 + random.uniform(0, ceiling / 2), _retry_after(response))
        if time.monotonic() + delay > deadline:
            return False
        self._counters.retries += 1
        return self._wait(delay)

    def ingest(self, dest: Destination, items: list[Any], body: bytes | None = None) -> None:
        """Deliver ingest items (``{"type", "body"}``), retrying what may succeed later.

        ``body`` is the batch's JSON when the caller already has it (:func:`dumps_batch` of ``items``).
        """
        deadline = time.monotonic() + dest.max_retry_seconds
        attempt = 0
        queue = [items]
        while queue:
            batch = queue.pop()
            if body is None or batch is not items:
                body = dumps_batch(batch)
            response: httpx.Response | None = None
            try:
                response = self._post(dest, "/api/ingest", body, auth=True)
            except httpx.HTTPError as exc:
                self._note("network", "sightline: cannot reach %s (%s); retrying", dest.server_url, exc)
            if response is not None and response.status_code == 413 and len(batch) > 1:
                half = len(batch) // 2
                queue += [batch[half:], batch[:half]]
                continue
            if response is not None and not _retriable(response.status_code):
                self._counters.batches += 1
                retry = self._results(dest, batch, response)
                if not retry:
                    attempt = 0
                    continue
                batch = retry
            elif response is not None:
                self._note(
                    "status", "sightline: %s answered %s; retrying", dest.server_url, response.status_code
                )
            if self._backoff(attempt, response, deadline):
                attempt += 1
                queue.append(batch)
            else:
                self._gave_up(dest, batch)

    def _results(self, dest: Destination, batch: list[Any], response: httpx.Response) -> list[Any]:
        """Count the per-item answers; return the items worth retrying."""
        if response.status_code >= 300:
            self._counters.rejected += len(batch)
            self._note(
                "rejected",
                "sightline: %s refused a batch with %s: %s",
                dest.server_url,
                response.status_code,
                response.text[:500],
            )
            return []
        try:
            results: list[dict[str, Any]] = json.loads(response.content)["results"]
        except (ValueError, KeyError, TypeError):
            self._counters.sent += len(batch)
            return []
        retry: list[Any] = []
        for result in results:
            index, status = result.get("index"), result.get("status")
            if not isinstance(index, int) or not isinstance(status, int) or not 0 <= index < len(batch):
                continue
            if status < 300:
                self._counters.sent += 1
            elif _retriable(status):
                retry.append(batch[index])
            else:
                self._counters.rejected += 1
                self._note("item", "sightline: the server refused a record: %s", result.get("error"))
        return retry

    def feedback(self, dest: Destination, value: Any) -> None:
        """Send feedback that names its generation by a feedback key (no API key needed)."""
        body = dumps(value)
        deadline = time.monotonic() + dest.max_retry_seconds
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = self._post(dest, "/api/feedback", body, auth=False)
            except httpx.HTTPError as exc:
                self._note("network", "sightline: cannot reach %s (%s); retrying", dest.server_url, exc)
            if response is not None and response.status_code < 300:
                self._counters.sent += 1
                return
            if response is not None and not _retriable(response.status_code):
                self._counters.rejected += 1
                self._note("item", "sightline: the server refused feedback: %s", response.text[:500])
                return
            if not self._backoff(attempt, response, deadline):
                if self._give_up is not None:
                    self._give_up([{"type": FEEDBACK_KEY, "body": value}])
                else:
                    self._counters.failed += 1
                return
            attempt += 1

    def _gave_up(self, dest: Destination, items: list[Any]) -> None:
        if self._give_up is not None:
            self._give_up(items)
            return
        self._counters.failed += len(items)
        self._note(
            "failed", "sightline: gave up on %d records for %s after retrying", len(items), dest.server_url
        )

    def _note(self, kind: str, message: str, *args: object) -> None:
        if self._throttle.ready(kind):
            logger.warning(message, *args)
