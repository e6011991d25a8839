"""Projects, environments, API keys and dashboard users.

An API key is printed once when made; only its SHA-256 is stored. Passwords are hashed with
Argon2. These writes are rare (CLI, admin pages), so they run in their own short transactions
rather than through the ingest writer.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, select, update

from ...errors import Conflict, InvalidInput, NotFound
from ...feedback_key import hash_api_key, key_reference
from .. import tables as t
from ..engine.dialect import insert_ignore
from ..generations.records import Scope

__all__ = [
    "ApiKey",
    "User",
    "authenticate_user",
    "create_key",
    "create_user",
    "ensure_project",
    "find_key",
    "find_key_by_reference",
    "list_environments",
    "list_keys",
    "list_projects",
    "list_users",
    "revoke_key",
    "set_user_role",
]

Role = Literal["admin", "member"]
ROLES = ("admin", "member")
_hasher = PasswordHasher()
_KEY_PREFIX = "sl_"


def _now_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    project_id: int
    project: str
    environment: str
    name: str | None
    prefix: str
    key_hash: str
    created_us: int
    revoked_us: int | None

    @property
    def scope(self) -> Scope:
        return Scope(self.project_id, self.environment, self.id)


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    role: str
    created_us: int
    disabled: bool


def _check_name(kind: str, value: str, limit: int = 64) -> str:
    value = value.strip()
    if not value or len(value) > limit or not all(c.isalnum() or c in "-_." for c in value):
        raise InvalidInput(
            f"{kind} must be 1-{limit} letters, digits, '-', '_' or '.'; got {value!r}", field=kind
        )
    return value


def ensure_project(conn: Connection, name: str, environment: str | None = None) -> int:
    """The id of project ``name`` (made when new), with ``environment`` registered under it."""
    name = _check_name("project", name)
    insert_ignore(conn, t.projects, [{"name": name, "created_us": _now_us()}])
    project_id = conn.scalar(select(t.projects.c.id).where(t.projects.c.name == name))
    assert project_id is not None
    if environment is not None:
        environment = _check_name("environment", environment)
        insert_ignore(
            conn, t.environments, [{"project_id": project_id, "name": environment, "created_us": _now_us()}]
        )
    return int(project_id)


def list_projects(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(select(t.projects).order_by(t.projects.c.name))]


def list_environments(conn: Connection, project_id: int) -> list[str]:
    q = (
        select(t.environments.c.name)
        .where(t.environments.c.project_id == project_id)
        .order_by(t.environments.c.name)
    )
    return list(conn.scalars(q))


def create_key(
    conn: Connection, project: str, environment: str, name: str | None = None
) -> tuple[str, ApiKey]:
    """Make an API key for ``project``/``environment`` (both made when new). The key is returned only here."""
    project_id = ensure_project(conn, project, environment)
    secret = _KEY_PREFIX + secrets.token_urlsafe(32)
    key_hash = hash_api_key(secret)
    conn.execute(
        t.api_keys.insert().values(
            project_id=project_id,
            environment=environment.strip(),
            name=name,
            prefix=secret[:10],
            key_hash=key_hash,
            key_ref=key_reference(key_hash),
            created_us=_now_us(),
        )
    )
    found = _key_where(conn, t.api_keys.c.key_hash == key_hash)
    assert found is not None
    return secret, found


def _key_query() -> Any:
    k = t.api_keys
    return select(
        k.c.id,
        k.c.project_id,
        t.projects.c.name.label("project"),
        k.c.environment,
        k.c.name,
        k.c.prefix,
        k.c.key_hash,
        k.c.created_us,
        k.c.revoked_us,
    ).join(t.projects, t.projects.c.id == k.c.project_id)


def _key_where(conn: Connection, condition: Any) -> ApiKey | None:
    row = conn.execute(_key_query().where(condition)).first()
    return ApiKey(**row._mapping) if row is not None else None


def find_key(conn: Connection, secret: str) -> ApiKey | None:
    """The live (not revoked) key whose secret is ``secret``."""
    key = _key_where(conn, t.api_keys.c.key_hash == hash_api_key(secret))
    return key if key is not None and key.revoked_us is None else None


def find_key_by_reference(conn: Connection, reference: str) -> list[ApiKey]:
    """Live keys whose hash starts with ``reference`` (as a feedback key names them)."""
    rows = conn.execute(
        _key_query().where(t.api_keys.c.key_ref == reference, t.api_keys.c.revoked_us.is_(None))
    )
    return [ApiKey(**r._mapping) for r in rows]


def list_keys(conn: Connection, project_id: int | None = None) -> list[ApiKey]:
    q = _key_query().order_by(t.api_keys.c.id)
    if project_id is not None:
        q = q.where(t.api_keys.c.project_id == project_id)
    return [ApiKey(**r._mapping) for r in conn.execute(q)]


def revoke_key(conn: Connection, key_id_or_prefix: str) -> ApiKey:
    """Revoke a key by its id or its shown prefix. Requests with it are refused from then on."""
    k = t.api_keys
    cond = k.c.id == int(key_id_or_prefix) if key_id_or_prefix.isdigit() else k.c.prefix == key_id_or_prefix
    matches = conn.execute(select(k.c.id).where(cond)).all()
    if not matches:
        raise NotFound(f"no API key {key_id_or_prefix!r}")
    if len(matches) > 1:
        raise Conflict(f"{key_id_or_prefix!r} names {len(matches)} keys; give the key id")
    conn.execute(
        update(k).where(k.c.id == matches[0].id, k.c.revoked_us.is_(None)).values(revoked_us=_now_us())
    )
    found = _key_where(conn, k.c.id == matches[0].id)
    assert found is not None
    return found


def create_user(conn: Connection, username: str, password: str, role: str = "admin") -> User:
    """Add a dashboard user with an Argon2-hashed password."""
    username = _check_name("username", username, 100)
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}; got {role!r}", field="role")
    if len(password) < 8:
        raise InvalidInput("password must have at least 8 characters", field="password")
    if conn.scalar(select(t.users.c.id).where(t.users.c.username == username)) is not None:
        raise Conflict(f"user {username!r} exists")
    conn.execute(
        t.users.insert().values(
            username=username,
            password_hash=_hasher.hash(password),
            role=role,
            created_us=_now_us(),
            disabled=False,
        )
    )
    return _user(conn, username)


def _user(conn: Connection, username: str) -> User:
    u = t.users
    row = conn.execute(
        select(u.c.id, u.c.username, u.c.role, u.c.created_us, u.c.disabled).where(u.c.username == username)
    ).first()
    if row is None:
        raise NotFound(f"no user {username!r}")
    return User(**row._mapping)


def authenticate_user(conn: Connection, username: str, password: str) -> User | None:
    """The user if ``password`` is theirs (and they are not disabled), else ``None``."""
    row = conn.execute(
        select(t.users.c.password_hash, t.users.c.disabled).where(t.users.c.username == username)
    ).first()
    if row is None or row.disabled:
        _hasher.hash(password)  # same work either way: no timing hint that the name exists
        return None
    try:
        _hasher.verify(row.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    return _user(conn, username)


def get_user(conn: Connection, user_id: int) -> User | None:
    u = t.users
    row = conn.execute(
        select(u.c.id, u.c.username, u.c.role, u.c.created_us, u.c.disabled).where(u.c.id == user_id)
    ).first()
    return User(**row._mapping) if row is not None else None


def list_users(conn: Connection) -> list[User]:
    u = t.users
    q = select(u.c.id, u.c.username, u.c.role, u.c.created_us, u.c.disabled).order_by(u.c.username)
    return [User(**r._mapping) for r in conn.execute(q)]


def set_user_role(conn: Connection, username: str, role: str) -> User:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}; got {role!r}", field="role")
    user = _user(conn, username)
    conn.execute(update(t.users).where(t.users.c.id == user.id).values(role=role))
    return _user(conn, username)
