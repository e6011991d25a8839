"""Login throttling: failed logins counted per account and per client address, in the database.

Kept in the database (not in one process's memory) so every server process of an install sees the
same counts: a guesser cannot spread attempts over several processes. Past a number of free
failures, each further failure locks the subject out for twice as long as the one before
(30 s, 1 min, 2 min, ... up to ``max_lock_seconds``); while a subject is locked out its logins are
refused without the password being checked. Failures older than ``window_seconds`` are forgotten.

A successful login clears its account's count, not its address's: otherwise a guesser holding one
valid account could clear their address between guesses at the others.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection, delete, select, text

from .. import tables as t

__all__ = ["LoginThrottle", "address_subject", "user_subject"]


def _now_us() -> int:
    return time.time_ns() // 1000


def user_subject(username: str) -> str:
    """The throttle subject of an account name (long names are cut: no such account exists)."""
    return "user:" + username[:150]


def address_subject(address: str) -> str:
    """The throttle subject of a client address."""
    return "addr:" + address[:150]


# One statement, so concurrent failures from several processes each count (no lost update):
# a count older than the window (and no longer locking) starts again at 1.
_COUNT = text(
    "INSERT INTO login_throttle (subject, failures, last_failure_us, locked_until_us) "
    "VALUES (:subject, 1, :now, 0) "
    "ON CONFLICT (subject) DO UPDATE SET "
    "failures = CASE WHEN login_throttle.last_failure_us < :forget "
    "AND login_throttle.locked_until_us <= :now THEN 1 ELSE login_throttle.failures + 1 END, "
    "last_failure_us = :now "
    "RETURNING failures"
)
_LOCK = text(
    "UPDATE login_throttle SET locked_until_us = CASE WHEN locked_until_us < :until "
    "THEN :until ELSE locked_until_us END WHERE subject = :subject"
)


@dataclass(frozen=True, slots=True)
class LoginThrottle:
    """The throttle's policy; its methods run in the caller's connection."""

    free_account_failures: int = 5
    free_address_failures: int = 20
    first_lock_seconds: int = 30
    max_lock_seconds: int = 15 * 60
    window_seconds: int = 15 * 60

    def wait_seconds(self, conn: Connection, subjects: list[str], *, now_us: int | None = None) -> float:
        """How long until these subjects may try again (0: now)."""
        now = _now_us() if now_us is None else now_us
        until = conn.scalar(
            select(t.login_throttle.c.locked_until_us)
            .where(t.login_throttle.c.subject.in_(subjects))
            .order_by(t.login_throttle.c.locked_until_us.desc())
            .limit(1)
        )
        return max(0.0, ((until or 0) - now) / 1e6)

    def failed(self, conn: Connection, username: str, address: str, *, now_us: int | None = None) -> float:
        """Count a failed login; answers how long the account or address is now locked out (0: not)."""
        now = _now_us() if now_us is None else now_us
        forget = now - self.window_seconds * 1_000_000
        wait = 0.0
        for subject, free in (
            (user_subject(username), self.free_account_failures),
            (address_subject(address), self.free_address_failures),
        ):
            failures = int(
                conn.execute(_COUNT, {"subject": subject, "now": now, "forget": forget}).scalar_one()
            )
            if failures > free:
                seconds = min(
                    self.first_lock_seconds * 2 ** min(failures - free - 1, 20), self.max_lock_seconds
                )
                conn.execute(_LOCK, {"subject": subject, "until": now + seconds * 1_000_000})
                wait = max(wait, float(seconds))
        return wait

    def succeeded(self, conn: Connection, username: str) -> None:
        """A login of ``username`` succeeded: its account's count starts again."""
        conn.execute(delete(t.login_throttle).where(t.login_throttle.c.subject == user_subject(username)))
