"""Changes to a dashboard user that must end their sessions: a new password, disabling, removal.

Each runs in the caller's transaction with the deletion of the user's sessions, so no session
outlives the change (see ``sessions``).
"""

from __future__ import annotations

from argon2 import PasswordHasher
from sqlalchemy import Connection, delete, update

from ...errors import InvalidInput
from .. import tables as t
from .projects import User, _user, authenticate_user
from .sessions import end_user_sessions

__all__ = ["change_password", "remove_user", "set_user_disabled", "sign_out_everywhere"]

_hasher = PasswordHasher()


def change_password(conn: Connection, username: str, current: str, new: str) -> User:
    """Set a new password after checking the current one; every session of the user ends."""
    user = authenticate_user(conn, username, current)
    if user is None:
        raise InvalidInput("the current password is wrong", field="current_password")
    if len(new) < 8:
        raise InvalidInput("password must have at least 8 characters", field="password")
    conn.execute(update(t.users).where(t.users.c.id == user.id).values(password_hash=_hasher.hash(new)))
    end_user_sessions(conn, user.id)
    return user


def set_user_disabled(conn: Connection, username: str, disabled: bool) -> User:
    """Disable (every session ends, logins are refused) or enable a user."""
    user = _user(conn, username)
    conn.execute(update(t.users).where(t.users.c.id == user.id).values(disabled=disabled))
    if disabled:
        end_user_sessions(conn, user.id)
    return _user(conn, username)


def remove_user(conn: Connection, username: str) -> User:
    """Remove a user and end their sessions."""
    user = _user(conn, username)
    end_user_sessions(conn, user.id)
    conn.execute(delete(t.users).where(t.users.c.id == user.id))
    return user


def sign_out_everywhere(conn: Connection, username: str) -> int:
    """End every session of a user; answers how many there were."""
    return end_user_sessions(conn, _user(conn, username).id)
