"""Delivery of encoded records to the Sightline server: one batch per request, gzip, retries.

Network errors, 5xx and 429 are retried with exponential backoff and jitter (honouring
``Retry-After``) until the destination's ``max_retry_seconds`` run out; any other 4xx is final. The
server answers each item of a batch on its own, so items it refused are counted as rejected while
the rest of the batch is delivered.
"""

from __future__ import annotations

import gzip
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from sightline import __version__
from sightline.sdk._config import Destination
from sightline.sdk._guard import Throttle, logger

__all__ = ["Counters", "Sender"]

_GZIP_OVER = 1024
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
            self._http = httpx.Client(
                transport=self._transport,
                headers={"User-Agent": f"sightline-python/{__version__}", "Content-Type": "application/json"},
            )
        return self._http

    def close(self) -> None:
        """Release the HTTP connections."""
        if self._http is not None:
            self._http.close()
            self._http = None

    def _post(self, dest: Destination, path: str, body: bytes, auth: bool) -> httpx.Response:
        headers = {"Authorization": f"Bearer {dest.api_key}"} if auth else {}
        if len(body) > _GZIP_OVER:
            body = gzip.compress(body, compresslevel=5)
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

    def ingest(self, dest: Destination, parts: list[bytes]) -> None:
        """Deliver encoded ingest items (``{"type", "body"}`` JSON), retrying what may succeed later."""
        deadline = time.monotonic() + dest.max_retry_seconds
        attempt = 0
        queue = [parts]
        while queue:
            batch = queue.pop()
            body = b'{"batch":[' + b",".join(batch) + b"]}"
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

    def _results(self, dest: Destination, batch: list[bytes], response: httpx.Response) -> list[bytes]:
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
        retry: list[bytes] = []
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

    def feedback(self, dest: Destination, body: bytes) -> None:
        """Send feedback that names its generation by a feedback key (no API key needed)."""
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
