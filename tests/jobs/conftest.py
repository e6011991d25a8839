"""A started database of the test's dialect, and a clock the test moves."""

from __future__ import annotations

import pytest


class Clock:
    """Seconds since the epoch, moved on by the test (back-off and leases without waiting)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()
