"""``with sightline.context(user_id=..., metadata=...):`` for every call inside a block.

The values live in a :class:`contextvars.ContextVar`, so each thread and each asyncio task sees its
own; a nested block adds to (and overrides) the enclosing one.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from sightline.sdk._params import check_metadata, coerce_id

__all__ = ["Scope", "context", "current_scope"]


@dataclass(frozen=True, slots=True)
class Scope:
    """What the enclosing ``sightline.context`` blocks say about the calls made inside them."""

    user_id: str | None = None
    session_id: str | None = None
    chat_id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


_scope: ContextVar[Scope | None] = ContextVar("sightline_scope", default=None)


def current_scope() -> Scope | None:
    """The scope in force here, or ``None`` outside any ``sightline.context`` block."""
    return _scope.get()


class context:  # noqa: N801 - used like a function: `with sightline.context(...)`
    """Attach a user, session, chat or metadata to every call made inside the block.

    Usable as ``with`` and ``async with``; a nested block merges into the enclosing one, metadata key
    by key. Ids are strings or ``uuid.UUID`` objects. Metadata is validated here, with a
    :class:`ValueError` naming the bad key.
    """

    def __init__(
        self,
        *,
        user_id: str | uuid.UUID | None = None,
        session_id: str | uuid.UUID | None = None,
        chat_id: str | uuid.UUID | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self._user_id = coerce_id("user_id", user_id)
        self._session_id = coerce_id("session_id", session_id)
        self._chat_id = coerce_id("chat_id", chat_id)
        self._metadata = check_metadata(metadata) if metadata else {}
        self._tokens: list[Token[Scope | None]] = []

    def __enter__(self) -> Scope:
        outer = _scope.get()
        if outer is None:
            scope = Scope(self._user_id, self._session_id, self._chat_id, self._metadata)
        else:
            scope = Scope(
                self._user_id or outer.user_id,
                self._session_id or outer.session_id,
                self._chat_id or outer.chat_id,
                {**outer.metadata, **self._metadata},
            )
        self._tokens.append(_scope.set(scope))
        return scope

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _scope.reset(self._tokens.pop())

    async def __aenter__(self) -> Scope:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)
