"""Fixtures of the SDK tests: the fake OpenAI upstream, and a capture of what the SDK sends.

:class:`Capture` stands in for the Sightline server through ``httpx.MockTransport`` (no sockets), so
unit tests read exactly the batches the exporter posted. End-to-end tests use the real server
(the shared ``server`` fixture of ``tests/conftest.py``).
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

import sightline
from sightline.sdk import _sender, _signing, _worker
from tests.fake_openai import FakeOpenAI

SIGHTLINE_KEY = "sl_test_key_0123456789abcdef"
CAPTURE_SIGNING_KEY = b"signing key the capture hands out"  # what the server derives from its secret


@dataclass
class Capture:
    """What the exporter sent, answered like the server does (each item 201 unless told otherwise)."""

    requests: list[httpx.Request] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)
    answer: Callable[[httpx.Request, list[dict[str, Any]]], httpx.Response] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/feedback/signing-key":
            signing_key = base64.urlsafe_b64encode(CAPTURE_SIGNING_KEY).decode()
            return httpx.Response(200, json={"keyReference": "", "signingKey": signing_key})
        raw = request.content
        if request.headers.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
        data = json.loads(raw)
        with self.lock:
            self.requests.append(request)
        if request.url.path == "/api/feedback":
            if self.answer is not None:
                return self.answer(request, [data])
            with self.lock:
                self.feedback.append(data)
            return httpx.Response(201, json={"id": "x"})
        batch = data["batch"]
        if self.answer is not None:
            response = self.answer(request, batch)
            if response.status_code != 200:
                return response
        with self.lock:
            self.items.extend(batch)
        results = [{"index": i, "status": 201, "id": item["body"].get("id")} for i, item in enumerate(batch)]
        return httpx.Response(200, json={"results": results})

    def of(self, kind: str) -> list[dict[str, Any]]:
        """The bodies of the items of one type, in the order they were sent."""
        return [item["body"] for item in self.items if item["type"] == kind]

    def generations(self) -> list[dict[str, Any]]:
        assert sightline.flush(10), "the exporter did not flush in time"
        return self.of("generation")

    def one(self) -> dict[str, Any]:
        """The one generation sent so far."""
        generations = self.generations()
        assert len(generations) == 1, generations
        return generations[0]


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    yield server
    server.close()


@pytest.fixture
def capture(monkeypatch: pytest.MonkeyPatch) -> Iterator[Capture]:
    """A fresh exporter whose requests go to a :class:`Capture` (retries back off in milliseconds)."""
    monkeypatch.setattr(_sender, "_BACKOFF_BASE", 0.001)
    monkeypatch.setattr(_sender, "_BACKOFF_CAP", 0.01)
    monkeypatch.delenv("SIGHTLINE_API_KEY", raising=False)
    monkeypatch.delenv("SIGHTLINE_SERVER_URL", raising=False)
    cap = Capture()
    _worker.reset(transport=httpx.MockTransport(cap.handler))
    _signing.reset(transport=httpx.MockTransport(cap.handler))
    yield cap
    _worker.reset(timeout=2)
    _signing.reset()


def config(**overrides: Any) -> sightline.SightlineConfig:
    """A configuration that records to the capture."""
    values: dict[str, Any] = {"api_key": SIGHTLINE_KEY, "server_url": "http://sightline.test", **overrides}
    return sightline.SightlineConfig(**values)


@pytest.fixture
def client(fake_openai: FakeOpenAI, capture: Capture) -> sightline.Client:
    return sightline.Client(api_key="sk-upstream", base_url=fake_openai.base_url, sightline=config())


@pytest.fixture
def aclient(fake_openai: FakeOpenAI, capture: Capture) -> sightline.AsyncClient:
    return sightline.AsyncClient(api_key="sk-upstream", base_url=fake_openai.base_url, sightline=config())


USER = {"role": "user", "content": "Show me an emoji for the sport: soccer"}
