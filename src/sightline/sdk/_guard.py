"""Keeping Sightline's own failures away from the caller.

A bug in Sightline's bookkeeping must never fail or change the caller's model call: it is logged and
the call goes ahead. Under pytest the same bug is re-raised, so a test suite sees it instead of a log
line nobody reads (as logfire does).
"""

from __future__ import annotations

import logging
import os
import threading
import time

__all__ = ["Throttle", "logger", "report_internal_error", "under_pytest"]

logger = logging.getLogger("sightline.sdk")


def under_pytest() -> bool:
    """Whether a pytest test is running in this process right now."""
    return "PYTEST_CURRENT_TEST" in os.environ


def report_internal_error(doing: str, exc: BaseException) -> None:
    """Log a bug in Sightline's bookkeeping; re-raise it when running under pytest.

    Call this from an ``except`` block that wraps only Sightline's own work, never the caller's call.
    """
    if under_pytest():
        raise exc
    logger.error("sightline: internal error while %s (the model call is not affected)", doing, exc_info=exc)


class Throttle:
    """Lets one message of each kind through per period (at most once a minute by default)."""

    def __init__(self, period: float = 60.0) -> None:
        self._period = period
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def ready(self, kind: str) -> bool:
        """True when a message of this kind may be logged now."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self._period:
                return False
            self._last[kind] = now
            return True
