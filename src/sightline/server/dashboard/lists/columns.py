"""The columns of the generations list: which there are, which a user chose, and saving that choice.

A column is a standard one (:data:`STANDARD`), ``metadata.<key>`` (a custom metadata value) or
``score.<name>`` (the latest score of that name). Each user's choice is kept per project on the
server (``store.access.preferences``), so it follows them to any browser; without a choice the list
shows :data:`DEFAULT`. The chooser is a plain form (it works without JavaScript) posted here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from ....errors import InvalidInput
from ....schema import SCORE_NAME
from ....store.access.preferences import get_preference, set_preference
from ....store.generations.reads.listing import metadata_keys, score_names
from ..core.context import FormDep, ViewDep
from ..core.render import redirect, url_with

__all__ = ["DEFAULT", "PREFERENCE", "STANDARD", "Column", "chosen_columns", "router"]

router = APIRouter()

PREFERENCE = "generations.columns"
MAX_COLUMNS = 40

# key -> (heading, the sort= key its header sorts by, or "")
STANDARD: dict[str, tuple[str, str]] = {
    "time": ("Time", "time"),
    "model": ("Model", ""),
    "template": ("Template", ""),
    "user": ("User", ""),
    "input": ("Input", ""),
    "output": ("Output", ""),
    "status": ("Status", ""),
    "tokens": ("Tokens", "tokens"),
    "cost": ("Cost", "cost"),
    "latency": ("Latency", "latency"),
    "cache": ("Cache", ""),
    "feedback": ("Feedback", ""),
    "scores": ("Scores", ""),
}
DEFAULT = ["time", "model", "template", "user", "input", "output", "status", "tokens", "cost", "latency",
           "cache", "feedback", "scores"]  # fmt: skip
_SCORE = re.compile(SCORE_NAME)


@dataclass(frozen=True)
class Column:
    """One column of the list as the page prints it."""

    key: str
    label: str
    sort: str = ""

    @property
    def metadata_key(self) -> str | None:
        return self.key[len("metadata.") :] if self.key.startswith("metadata.") else None

    @property
    def score_name(self) -> str | None:
        return self.key[len("score.") :] if self.key.startswith("score.") else None


def column(key: str) -> Column:
    """The column of a key; InvalidInput naming ``columns`` for a key that names none."""
    if key in STANDARD:
        label, sort = STANDARD[key]
        return Column(key, label, sort)
    head, _, rest = key.partition(".")
    if head == "metadata" and rest and len(rest) <= 200 and rest != "userId":
        return Column(key, rest)
    if head == "score" and _SCORE.fullmatch(rest) and len(rest) <= 100:
        return Column(key, rest)
    raise InvalidInput(
        f"columns: {key[:100]!r} is not a column (a standard one, metadata.<key> or score.<name>)",
        field="columns",
    )


def parse_columns(keys: list[str]) -> list[Column]:
    """The columns of the keys, in order, each once, the time always; at most :data:`MAX_COLUMNS`."""
    keys = list(dict.fromkeys(k.strip() for k in keys if k.strip()))
    if not keys:
        raise InvalidInput("columns: choose at least one column", field="columns")
    if "time" not in keys:  # the time is each row's link to its generation
        keys.insert(0, "time")
    if len(keys) > MAX_COLUMNS:
        raise InvalidInput(f"columns: at most {MAX_COLUMNS}", field="columns")
    return [column(k) for k in keys]


def chosen_columns(conn: Any, user_id: int, project_id: int) -> list[Column]:
    """The columns the user chose in the project, or the default ones."""
    saved = get_preference(conn, user_id, project_id, PREFERENCE)
    if isinstance(saved, list):
        try:
            return parse_columns([str(k) for k in saved])
        except InvalidInput:  # a column that is no more (a renamed one): start again from the default
            pass
    return [column(k) for k in DEFAULT]


def available_columns(conn: Any, project_id: int, chosen: list[Column]) -> list[Column]:
    """Every column the chooser offers: the standard ones, then the project's metadata keys and score
    names (and whatever the user chose that the project no longer has)."""
    found = [column(k) for k in STANDARD]
    keys = [k for k in metadata_keys(conn, project_id) if not k.startswith("tags:")]
    found += [Column(f"metadata.{k}", k) for k in keys]
    found += [Column(f"score.{n}", n) for n in score_names(conn, project_id)]
    known = {c.key for c in found}
    return found + [c for c in chosen if c.key not in known]


def _back(target: str, scope: dict[str, str]) -> str:
    # Only back to the list itself: a form cannot send anyone elsewhere.
    if target.startswith("/generations") and not target.startswith("//"):
        return target
    return url_with("/generations", scope)


@router.post("/generations/columns", include_in_schema=False)
def save_columns(request: Request, view: ViewDep, form: FormDep) -> Response:
    """Keep the columns ticked in the chooser (``reset`` goes back to the default) for this user and
    project, and go back to the list."""
    target = _back(str(form.get("next") or ""), view.scope)
    keys = list(DEFAULT) if form.get("reset") else [str(v) for v in form.getlist("columns")]
    columns = parse_columns(keys)  # a bad one: a 400 page naming the field (the form only sends good ones)
    with request.app.state.db.transaction() as conn:
        set_preference(conn, view.user.id, view.project_id, PREFERENCE, [c.key for c in columns])
    return redirect(request, target)
