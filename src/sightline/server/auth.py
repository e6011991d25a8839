"""API-key authentication for the HTTP API: the gateway's one bearer parser and key lookup.

``app.state.keys`` is the :class:`~sightline.gateway.KeyLookup` the gateway uses too: keys are
looked up by their SHA-256 off the event loop, and what was found or refused is remembered for
``key_cache_seconds`` (see :mod:`sightline.gateway.keys`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..gateway import Caller, KeyLookup
from ..store.access.audit import Actor
from ..store.access.projects import ApiKey, User

__all__ = ["ApiKeyDep", "CallerDep", "actor", "require_caller", "require_key"]


def actor(request: Request, who: ApiKey | User) -> Actor:
    """Who does what a request asks, for the audit log: its API key (id and prefix, never the key) or
    its dashboard user, and the address the request came from."""
    client = request.client.host if request.client is not None else None
    if isinstance(who, ApiKey):
        return Actor("key", who.id, who.prefix, client)
    return Actor("user", who.id, who.username, client)


async def require_caller(request: Request) -> Caller:
    """The caller of the request (its API key and the secret sent), or ``AuthenticationError``."""
    keys: KeyLookup = request.app.state.keys
    return await keys.authenticate(request.headers.get("authorization"))


async def require_key(request: Request) -> ApiKey:
    """The API key of the request, or ``AuthenticationError``."""
    return (await require_caller(request)).key


ApiKeyDep = Annotated[ApiKey, Depends(require_key)]
CallerDep = Annotated[Caller, Depends(require_caller)]
