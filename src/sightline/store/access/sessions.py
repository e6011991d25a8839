"""Dashboard sessions, kept in the database so the server can end them.

A login makes a random token, given to the browser (inside its signed cookie) and stored only as
its SHA-256. Every dashboard request looks the token up, so a session ends everywhere, at once,
when its row goes: at logout, when the user's password changes, when the user is disabled or
removed, and when an admin signs the user out everywhere.
"""

from __future__ import annotations

import hashlib
import secrets
import time

from sqlalchemy import Connection, delete, select

from .. import tables as t
from .projects import User

__all__ = ["SESSION_SECONDS", "end_session", "end_user_sessions", "session_user", "start_session"]

SESSION_SECONDS = 7 * 24 * 3600


def _now_us() -> int:
    return time.time_ns() // 1000


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(conn: Connection, user_id: int, *, now_us: int | None = None) -> str:
    """Start a session of ``user_id``; answers its token (to be kept by the browser only).

    Sessions that expired are swept here, so the table holds no more than the live ones and the
    logins of the last moments.
    """
    now = _now_us() if now_us is None else now_us
    token = secrets.token_urlsafe(32)
    conn.execute(delete(t.sessions).where(t.sessions.c.expires_us <= now))
    conn.execute(
        t.sessions.insert().values(
            token_hash=_hash(token),
            user_id=user_id,
            created_us=now,
            expires_us=now + SESSION_SECONDS * 1_000_000,
        )
    )
    return token


def session_user(conn: Connection, token: str, *, now_us: int | None = None) -> User | None:
    """The user of a live session (not ended, not expired, user not disabled), else ``None``."""
    now = _now_us() if now_us is None else now_us
    s, u = t.sessions, t.users
    row = conn.execute(
        select(u.c.id, u.c.username, u.c.role, u.c.created_us, u.c.disabled)
        .join(s, s.c.user_id == u.c.id)
        .where(s.c.token_hash == _hash(token), s.c.expires_us > now, u.c.disabled.is_(False))
    ).first()
    return User(**row._mapping) if row is not None else None


def end_session(conn: Connection, token: str) -> None:
    """End one session (logout)."""
    conn.execute(delete(t.sessions).where(t.sessions.c.token_hash == _hash(token)))


def end_user_sessions(conn: Connection, user_id: int) -> int:
    """End every session of ``user_id``; answers how many there were."""
    result = conn.execute(delete(t.sessions).where(t.sessions.c.user_id == user_id))
    return int(result.rowcount or 0)
