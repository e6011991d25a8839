"""A bug in Sightline's bookkeeping never reaches the caller, but fails loudly under pytest."""

from __future__ import annotations

import logging

import pytest

import sightline
from sightline import feedback_key
from sightline.sdk import _encode
from tests.sdk.conftest import USER, Capture


def _broken(*args: object, **kwargs: object) -> str:
    raise RuntimeError("bookkeeping bug")


def test_a_bookkeeping_bug_is_logged_and_the_call_goes_ahead(
    client: sightline.Client,
    capture: Capture,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(feedback_key.Signer, "sign", _broken)
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    with caplog.at_level(logging.ERROR, logger="sightline.sdk"):
        response = client.chat.completions.create(model="gpt-4o-mini", messages=[USER])
    assert response.choices[0].message.content
    assert "internal error while recording a call" in caplog.text


def test_under_pytest_the_same_bug_raises(
    client: sightline.Client, capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feedback_key.Signer, "sign", _broken)
    with pytest.raises(RuntimeError, match="bookkeeping bug"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[USER])


def test_a_bug_on_the_exporter_thread_surfaces_at_flush_under_pytest(
    client: sightline.Client, capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_encode, "generation_body", _broken)
    client.chat.completions.create(model="gpt-4o-mini", messages=[USER])
    with pytest.raises(RuntimeError, match="bookkeeping bug"):
        sightline.flush(5)
    assert sightline.stats().internal_errors == 1
    assert sightline.stats().failed == 1
