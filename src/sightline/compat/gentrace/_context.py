"""gentrace's context objects (``pipeline.start({...})``, ``gentrace={...}``) checked as its documents say.

* **User IDs** ("Limitations"): the userId parameter cannot be specified on a single step within a
  multi-step pipeline; a user ID is always associated with a single Gentrace run. A step that gives
  one raises :class:`UserIdOnStepError`, and its call is not made.
* **Metadata**: every value is an object with a ``"type"`` key (``"string"`` with ``value``, ``"url"``
  with ``url`` and ``text``); anything else is refused with :class:`MetadataError` naming the key.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sightline.compat.gentrace_wire import check_metadata
from sightline.errors import InvalidInput
from sightline.sdk import InvalidParams

__all__ = ["Context", "MetadataError", "UserIdOnStepError", "check_context", "refuse_step_user"]

_KEYS = frozenset({"userId", "metadata", "render", "previousRunId"})
USER_ID_RULE = (
    "The userId parameter cannot be specified on a single step within a multi-step pipeline: "
    "in Gentrace, a user ID is always associated with a single Gentrace run "
    '(give it to pipeline.start({"userId": ...}))'
)


class UserIdOnStepError(InvalidParams):
    """A step of a pipeline run tried to set ``userId``, which belongs to the whole run."""


class MetadataError(InvalidParams):
    """Metadata not formatted with one of the specified types; the call was not made."""


@dataclass(frozen=True, slots=True)
class Context:
    """What a gentrace context says: the user and the metadata (render hints are display-only)."""

    user_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def check_context(raw: Any, where: str) -> Context:
    """The context ``raw`` (a dict or None) checked: :class:`InvalidParams` naming what is wrong."""
    if raw is None:
        return Context()
    if not isinstance(raw, Mapping):
        raise InvalidParams(
            f'{where}: expected a dict such as {{"userId": ..., "metadata": {{...}}}}, '
            f"got {type(raw).__name__}",
            field=where,
        )
    unknown = sorted(str(k) for k in raw if k not in _KEYS)
    if unknown:
        raise InvalidParams(
            f"{where}: unknown keys {unknown} (a context takes {', '.join(sorted(_KEYS))})", field=where
        )
    user = raw.get("userId")
    if isinstance(user, uuid.UUID):
        user = str(user)
    if user is not None and (not isinstance(user, str) or not user or len(user) > 200):
        raise InvalidParams(f"{where}.userId: expected a string of 1 to 200 characters", field="userId")
    try:
        metadata = check_metadata(raw.get("metadata"), f"{where}.metadata")
    except InvalidInput as exc:
        raise MetadataError(exc.message, field=exc.field) from None
    return Context(user, metadata)


def refuse_step_user(context: Context) -> None:
    """Raise :class:`UserIdOnStepError` when a step's context sets the user (see the module's text)."""
    if context.user_id is not None:
        raise UserIdOnStepError(USER_ID_RULE, field="userId")
