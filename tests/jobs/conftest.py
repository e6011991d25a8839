"""A started database of the test's dialect, and a clock the test moves."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sightline.store import Database


class Clock:
    """Seconds since the epoch, moved on by the test (back-off and leases without waiting)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.start()
    yield database
    database.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()
