"""Delivery of records to the Sightline server: one batch per request, one connection, retries.

A batch is turned into JSON in one pass (``json`` walks the whole list in C; one call per record
cost several µs more each). It is gzipped only when that pays: when the server is on another
machine (on this one, compressing costs CPU and saves no time) and the body is big enough.
Level 1: on batches of chat records it took about 1 µs a record against 3.5 µs at level 5, for
bodies about a quarter larger (``bench/bench_sdk.py`` prints both).

Network errors, 5xx and 429 are retried with exponential backoff and jitter (honouring
``Retry-After``) until the destination's ``max_retry_seconds`` run out; any other 4xx is final. The
server answers each item of a batch on its own, so items it refused are counted as rejected while
the rest of the batch is delivered.
"""

from __future__ import annotations

import ipaddress
import json
import random
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from sightline import __version__
from sightline.sdk._config import Destination
from sightline.sdk._guard import Throttle, logger

__all__ = ["Counters", "Sender", "compresses", "dumps_batch"]

_GZIP_OVER = 1024
_GZIP_LEVEL = 1
# The server closes a connection idle for 5 s (uvicorn's default): let it go a little before.
_KEEPALIVE = 4.0
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
_BACKOFF_BASE = 0.25
_BACKOFF_CAP = 10.0
_RETRY_AFTER_CAP = 30.0


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


def dumps_batch(items: list[Any]) -> bytes:
    """``{"batch": items}`` as compact UTF-8 JSON, in one pass. Raises when an item cannot be.

    A lone surrogate (half of a broken character) becomes ``?`` rather than costing its record.
    """
    return _JSON.encode({"batch": items}).encode("utf-8", "replace")


def dumps(value: Any) -> bytes:
    """One value as compact UTF-8 JSON."""
    return _JSON.encode(value).encode("utf-8", "replace")


def compresses(dest: Destination) -> bool:
    """Whether bodies sent to ``dest`` are gzipped: as asked, else when the server is elsewhere."""
    if dest.compress is not None:
        return dest.compress
    host = urlsplit(dest.server_url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


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
    ) -> None:
        self._counters = counters
        self._wait = wait
        self._transport = transport
        self._http: httpx.Client | None = None
        self._throttle = Throttle()

    def _client(self) -> httpx.Client:
        if self._http is None:
            # One thread posts, one request at a time: one connection, kept alive between batches.
            self._http = httpx.Client(
                transport=self._transport,
                headers={"User-Agent": f"sightline-python/{__version__}", "Content-Type": "application/json"},
                limits=httpx.Limits(max_connections=1, keepalive_expiry=_KEEPALIVE),
            )
        return self._http

    def close(self) -> None:
        """Release the HTTP connections."""
        if self._http is not None:
            self._http.close()
            self._http = None

    def _post(self, dest: Destination, path: str, body: bytes, auth: bool) -> httpx.Response:
        headers = {"Authorization": f"Bearer {dest.api_key}"} if auth else {}
        if len(body) > _GZIP_OVER and compresses(dest):
            packer = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: the gzip format
            body = packer.compress(body) + packer.flush()
            headers["Content-Encoding"] = "gzip"
        return self._client().post(
            dest.server_url + path, content=body, headers=headers, timeout=dest.request_timeout
        )

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
                self._counters.failed += len(batch)
                self._note(
                    "failed",
                    "sightline: gave up on %d records for %s after retrying",
                    len(batch),
                    dest.server_url,
                )

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
                self._counters.failed += 1
                return
            attempt += 1

    def _note(self, kind: str, message: str, *args: object) -> None:
        if self._throttle.ready(kind):
            logger.warning(message, *args)
