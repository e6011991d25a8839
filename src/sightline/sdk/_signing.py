"""The SDK's feedback keys: signed with its API key's signing key, fetched from the server once.

Feedback keys are signed with a key derived from the server's secret (``sightline.feedback_key``),
which the SDK does not hold: it asks the server for its API key's signing key
(``GET /api/feedback/signing-key``) on a background thread, started when the client's first call
begins (building a client starts no thread), so the key comes while the model answers and the
caller's thread does not wait for it. Clients with the same server and API key share one fetch.

Until the key has come, a response carries an empty feedback key. The one exception: while the
first attempt is still under way, a call that finished before it waits for it (at most
``FIRST_WAIT`` seconds, once), because a model answer is almost never faster than a local server
and a response without a key is then a surprise. After a failed attempt (server down) calls never
wait; the fetch is retried in the background with growing pauses.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
from typing import Any

import httpx

from sightline.feedback_key import Signer, hash_api_key, key_reference, parse_feedback_key

__all__ = ["FIRST_WAIT", "RemoteSigner", "reset", "signer_for"]

logger = logging.getLogger("sightline.sdk")

FIRST_WAIT = 1.0  # seconds
_RETRY_FIRST, _RETRY_MAX = 0.5, 10.0  # seconds between attempts, doubling
_PATH = "/api/feedback/signing-key"


class RemoteSigner:
    """Signs feedback keys for one API key once its signing key has come from the server."""

    def __init__(self, server_url: str | None, api_key: str, transport: httpx.BaseTransport | None) -> None:
        self._url = server_url.rstrip("/") + _PATH if server_url else None
        self._api_key = api_key
        self._key_hash = hash_api_key(api_key)
        self._transport = transport
        self._signer: Signer | None = None
        self._first = threading.Event()
        self._lock = threading.Lock()
        self._pid = -1
        self._stop = threading.Event()

    @property
    def reference(self) -> str:
        """The reference feedback keys of this API key carry."""
        return key_reference(self._key_hash)

    def start(self) -> None:
        """Start fetching the signing key, unless this process already has (cheap when it has)."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()  # a child after fork has no thread: it starts its own
            if self._url is None or not self._api_key:
                self._first.set()  # not recording: nothing to wait for
                return
            self._first.clear()
            threading.Thread(target=self._fetch, name="sightline-signing-key", daemon=True).start()

    def _fetch(self) -> None:
        assert self._url is not None
        pause = _RETRY_FIRST
        headers = {"Authorization": f"Bearer {self._api_key}"}
        with httpx.Client(transport=self._transport, timeout=10.0) as http:
            while not self._stop.is_set():
                try:
                    response = http.get(self._url, headers=headers)
                    if response.status_code == 200:
                        self._signer = Signer(_signing_key(response.json()), self._key_hash)
                        return
                    if response.status_code in (401, 403, 404):
                        logger.warning(
                            "sightline: the server refused the feedback signing key (%s): responses "
                            "carry no feedback keys (feedback by generation id still works)",
                            response.status_code,
                        )
                        return
                except (httpx.HTTPError, ValueError, KeyError, TypeError):
                    pass  # the server is down or answered nonsense: try again later
                finally:
                    self._first.set()
                self._stop.wait(pause)
                pause = min(pause * 2, _RETRY_MAX)

    def sign(self, generation: str | bytes) -> str:
        """The feedback key of a generation (its id, or its UUID's 16 bytes); ``""`` while the
        signing key has not come."""
        signer = self._signer
        if signer is None:
            self.start()
            self._first.wait(FIRST_WAIT)
            signer = self._signer
            if signer is None:
                return ""
        return signer.sign(generation)

    def owns(self, feedback_key: str) -> bool:
        """Whether ``feedback_key`` names a generation of this API key (``ValueError`` if malformed)."""
        return parse_feedback_key(feedback_key)[1] == self.reference

    def close(self) -> None:
        self._stop.set()


def _signing_key(body: Any) -> bytes:
    key = base64.urlsafe_b64decode(str(body["signingKey"]))
    if len(key) < 16:
        raise ValueError("signing key too short")
    return key


class _Signers:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_key: dict[tuple[str | None, str], RemoteSigner] = {}
        self.transport: httpx.BaseTransport | None = None


_signers = _Signers()


def signer_for(server_url: str | None, api_key: str) -> RemoteSigner:
    """The signer of ``api_key`` on ``server_url`` (``None``: not recording), shared by its clients."""
    with _signers.lock:
        found = _signers.by_key.get((server_url, api_key))
        if found is None:
            found = _signers.by_key[(server_url, api_key)] = RemoteSigner(
                server_url, api_key, _signers.transport
            )
        return found


def reset(transport: httpx.BaseTransport | None = None) -> None:
    """Forget every fetched signing key; ``transport`` carries the fetches from now on (tests)."""
    with _signers.lock:
        for signer in _signers.by_key.values():
            signer.close()
        _signers.by_key.clear()
        _signers.transport = transport
