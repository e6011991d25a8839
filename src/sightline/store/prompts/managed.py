"""Reading prompts: managed versions (numbered saves with a model and parameters) and the templates
the SDK or the gateway recorded under a name, as one list of versions per name.

Versions of a prompt:

* a **managed** version is a save (dashboard, API): numbered 1, 2, 3... per name, immutable, with its
  content's hash (``template_version``, :func:`sightline.templating.template_version`);
* a **recorded** version is a template content that generations carried under the name
  (``prompt_versions``) and that no managed version has: it has only its hash.

Generations made from a managed prompt carry its name and its hash as ``template.version`` (ingest
hashes every template's content), so ``version=<hash>`` finds the prompt again: the newest managed
version of that content, else the recorded one. ``version=3`` finds the third save.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select

from ... import templating
from .. import tables as t

__all__ = ["Prompt", "PromptSummary", "get_prompt", "list_prompts", "prompt_history", "prompt_names"]

m, lb, pv = t.managed_prompts, t.prompt_labels, t.prompt_versions


@dataclass(frozen=True, slots=True)
class Prompt:
    """One version of a prompt, as a call needs it.

    ``version`` is the managed version's number (``None`` for a template only recorded), and
    ``template_version`` the content's hash. Exactly one of ``text`` and ``messages`` is set.
    """

    name: str
    version: int | None
    template_version: str
    text: str | None
    messages: list[dict[str, Any]] | None
    args: list[str]
    model: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    description: str | None = None
    labels: tuple[str, ...] = ()
    created_us: int = 0
    created_by: str | None = None

    @property
    def managed(self) -> bool:
        return self.version is not None

    def render(self, args: dict[str, Any]) -> str:
        """A text prompt rendered with exactly its arguments (a chat prompt's messages joined, each
        under its role). Raises :class:`~sightline.templating.TemplateError` naming a missing or
        unknown argument."""
        if self.text is not None:
            if self.managed:
                return templating.render_prompt(self.text, args)
            return templating.render_text(self.text, args)
        return "\n\n".join(f"{m['role']}: {m['content']}" for m in self.chat(args))

    def chat(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """The messages to send: a chat prompt's, rendered; a text prompt as one user message."""
        if self.messages is None:
            return [{"role": "user", "content": self.render(args)}]
        if self.managed:
            return templating.render_messages(self.messages, args)
        return templating.render_chat(self.messages, args)

    def request(self, args: dict[str, Any]) -> dict[str, Any]:
        """A chat completions request body: the prompt's model (when it has one), its messages and its
        parameters as OpenAI's arguments."""
        body: dict[str, Any] = templating.call_parameters(self.parameters)
        if self.model:
            body["model"] = self.model
        body["messages"] = self.chat(args)
        return body

    def recorded_template(self, args: dict[str, Any]) -> dict[str, Any]:
        """The generation's ``template`` for a call made from this version with ``args``: its name, its
        template (not the rendered text, so ingest finds this version's hash) and the arguments (for
        the gateway: ``Context(template=...)``)."""
        kind = {"chat": self.messages} if self.messages is not None else {"text": self.text}
        return {"name": self.name, **kind, "params": dict(args)}

    def wire(self) -> dict[str, Any]:
        """As the API answers it."""
        return {
            "name": self.name,
            "version": self.version,
            "templateVersion": self.template_version,
            "type": "text" if self.text is not None else "chat",
            "template": self.text,
            "messages": self.messages,
            "args": self.args,
            "model": self.model,
            "parameters": self.parameters,
            "description": self.description,
            "labels": list(self.labels),
            "createdAt": self.created_us,
            "createdBy": self.created_by,
        }


def _recorded_args(text: str | None, messages: list[Any] | None) -> list[str]:
    # A recorded template was never checked like a managed one: its arguments are what renders.
    found: dict[str, None] = {}
    parts = (
        [text]
        if text is not None
        else [msg.get("content") for msg in messages or [] if isinstance(msg, dict)]
    )
    for part in parts:
        if isinstance(part, str):
            found.update(dict.fromkeys(templating.placeholders(part)))
    return list(found)


def _labels(conn: Connection, project_id: int, name: str) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    q = select(lb.c.label, lb.c.version).where(lb.c.project_id == project_id, lb.c.name == name)
    for label, version in conn.execute(q.order_by(lb.c.label)):
        out.setdefault(version, []).append(label)
    return out


def _managed(row: Any, labels: dict[int, list[str]]) -> Prompt:
    body = row.body or {}
    return Prompt(
        name=row.name,
        version=row.version,
        template_version=row.template_version,
        text=body.get("text"),
        messages=body.get("chat"),
        args=list(row.args or []),
        model=row.model,
        parameters=dict(row.parameters or {}),
        description=row.description,
        labels=tuple(labels.get(row.version, ())),
        created_us=row.created_us,
        created_by=row.created_by,
    )


def _recorded(row: Any) -> Prompt:
    body = row.body or {}
    text, messages = body.get("text"), body.get("chat")
    return Prompt(
        name=row.name,
        version=None,
        template_version=row.version,
        text=text,
        messages=messages,
        args=_recorded_args(text, messages),
        created_us=row.created_us,
    )


def _plain(text: str, limit: int) -> bool:
    return isinstance(text, str) and 0 < len(text) <= limit and "\x00" not in text


def get_prompt(
    conn: Connection,
    project_id: int,
    name: str,
    *,
    version: int | str | None = None,
    label: str | None = None,
) -> Prompt | None:
    """One version of ``name`` in ``project_id``, or ``None``.

    ``label``: the version it points at. ``version``: a number (``3`` or ``"3"``) or a content hash.
    Neither: the latest managed version, else the latest recorded one.
    """
    if not _plain(name, 200) or (label is not None and not _plain(label, 64)):
        return None  # no prompt has it, and PostgreSQL refuses a NUL in a parameter
    base = select(m).where(m.c.project_id == project_id, m.c.name == name)
    if label is not None:
        number = conn.scalar(
            select(lb.c.version).where(lb.c.project_id == project_id, lb.c.name == name, lb.c.label == label)
        )
        if number is None:
            return None
        row = conn.execute(base.where(m.c.version == number)).first()
    elif version is not None and not isinstance(version, bool):
        text = str(version)
        if not (text.isascii() and text.isalnum() and len(text) <= 64):
            return None
        if text.isdigit():
            row = conn.execute(base.where(m.c.version == int(text))).first() if len(text) < 10 else None
            if row is None:
                return None
        else:
            row = conn.execute(base.where(m.c.template_version == text).order_by(m.c.version.desc())).first()
            if row is None:
                recorded = conn.execute(
                    select(pv).where(pv.c.project_id == project_id, pv.c.name == name, pv.c.version == text)
                ).first()
                return _recorded(recorded) if recorded is not None else None
    else:
        row = conn.execute(base.order_by(m.c.version.desc())).first()
        if row is None:
            recorded = conn.execute(
                select(pv)
                .where(pv.c.project_id == project_id, pv.c.name == name)
                .order_by(pv.c.created_us.desc(), pv.c.version.desc())
            ).first()
            return _recorded(recorded) if recorded is not None else None
    return _managed(row, _labels(conn, project_id, name)) if row is not None else None


def prompt_names(conn: Connection, project_id: int) -> set[str]:
    """Every prompt name of ``project_id``: managed, or only recorded."""
    managed = select(m.c.name).where(m.c.project_id == project_id)
    recorded = select(pv.c.name).where(pv.c.project_id == project_id)
    return set(conn.scalars(managed.union(recorded)))


def prompt_history(conn: Connection, project_id: int, name: str) -> list[Prompt]:
    """Every version of ``name``, newest first: the managed ones (by number), then the contents only
    recorded that no managed version has (newest first)."""
    if not _plain(name, 200):
        return []
    labels = _labels(conn, project_id, name)
    managed = [
        _managed(r, labels)
        for r in conn.execute(
            select(m).where(m.c.project_id == project_id, m.c.name == name).order_by(m.c.version.desc())
        )
    ]
    hashes = {p.template_version for p in managed}
    recorded = [
        _recorded(r)
        for r in conn.execute(
            select(pv)
            .where(pv.c.project_id == project_id, pv.c.name == name)
            .order_by(pv.c.created_us.desc(), pv.c.version.desc())
        )
        if r.version not in hashes
    ]
    return managed + recorded


@dataclass(frozen=True, slots=True)
class PromptSummary:
    """A prompt in a list: its latest managed version (if any), how many versions, its labels."""

    name: str
    latest: int | None
    versions: int
    recorded: int
    labels: dict[str, int]
    model: str | None
    description: str | None
    updated_us: int

    def wire(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "latestVersion": self.latest,
            "versions": self.versions,
            "recordedVersions": self.recorded,
            "labels": self.labels,
            "model": self.model,
            "description": self.description,
            "updatedAt": self.updated_us,
        }


def list_prompts(conn: Connection, project_id: int) -> list[PromptSummary]:
    """Every prompt of ``project_id`` by name: managed ones and names only recorded."""
    latest: dict[str, Any] = {}
    counts: dict[str, int] = {}
    hashes: dict[str, set[str]] = {}
    for r in conn.execute(
        select(m.c.name, m.c.version, m.c.template_version, m.c.model, m.c.description, m.c.created_us)
        .where(m.c.project_id == project_id)
        .order_by(m.c.name, m.c.version)
    ):
        latest[r.name] = r
        counts[r.name] = counts.get(r.name, 0) + 1
        hashes.setdefault(r.name, set()).add(r.template_version)
    recorded: dict[str, int] = {}
    recorded_us: dict[str, int] = {}
    for name, version, created_us in conn.execute(
        select(pv.c.name, pv.c.version, pv.c.created_us).where(pv.c.project_id == project_id)
    ):
        if version in hashes.get(name, ()):
            continue
        recorded[name] = recorded.get(name, 0) + 1
        recorded_us[name] = max(recorded_us.get(name, 0), created_us)
    labels: dict[str, dict[str, int]] = {}
    for name, label, version in conn.execute(
        select(lb.c.name, lb.c.label, lb.c.version).where(lb.c.project_id == project_id).order_by(lb.c.label)
    ):
        labels.setdefault(name, {})[label] = version
    out = []
    for name in sorted(set(latest) | set(recorded)):
        row = latest.get(name)
        out.append(
            PromptSummary(
                name=name,
                latest=row.version if row is not None else None,
                versions=counts.get(name, 0) + recorded.get(name, 0),
                recorded=recorded.get(name, 0),
                labels=labels.get(name, {}),
                model=row.model if row is not None else None,
                description=row.description if row is not None else None,
                updated_us=max(row.created_us if row is not None else 0, recorded_us.get(name, 0)),
            )
        )
    return out


def max_version(conn: Connection, project_id: int, name: str) -> int:
    """The number of the latest managed version of ``name`` (0: none)."""
    return int(
        conn.scalar(select(func.max(m.c.version)).where(m.c.project_id == project_id, m.c.name == name)) or 0
    )
