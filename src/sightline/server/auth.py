"""API-key authentication for the HTTP API: the gateway's one bearer parser and key lookup.

``app.state.keys`` is the :class:`~sightline.gateway.KeyLookup` the gateway uses too: keys are
looked up by their SHA-256 off the event loop, and what was found or refused is remembered for
``key_cache_seconds`` (see :mod:`sightline.gateway.keys`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..gateway import Caller, KeyLookup
from ..store.access.projects import ApiKey

__all__ = ["ApiKeyDep", "CallerDep", "require_caller", "require_key"]


async def require_caller(request: Request) -> Caller:
    """The caller of the request (its API key and the secret sent), or ``AuthenticationError``."""
    keys: KeyLookup = request.app.state.keys
    return await keys.authenticate(request.headers.get("authorization"))


async def require_key(request: Request) -> ApiKey:
    """The API key of the request, or ``AuthenticationError``."""
    return (await require_caller(request)).key


ApiKeyDep = Annotated[ApiKey, Depends(require_key)]
CallerDep = Annotated[Caller, Depends(require_caller)]
