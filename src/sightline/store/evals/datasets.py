"""Datasets: named, versioned sets of items ``{input, expectedOutput?, metadata}``, and their export.

Every change makes a new version of the dataset: items added in version v belong to v and later
versions until one removes them (``added_version <= v < removed_version``), so an experiment or an
export of version 3 reads the same items however the dataset changes later.

Items come by hand, from a JSONL or CSV upload (``server`` parses those), or from generations
(:func:`items_from_generations`): the generation's input, and its output or the ``betterResponse``
its user gave as the expected output. They leave as eval JSONL, CSV, or OpenAI's fine-tuning chat
format (:func:`chat_example`): the input's messages and the expected output as the assistant's turn.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from sqlalchemy import Connection, and_, func, insert, or_, select, update

from ...errors import InvalidInput, NotFound
from .. import tables as t
from ..access.audit import Actor, record_audit
from ..engine.database import Database
from ..generations.reads.export import chat_example, csv_cell
from ..generations.records import iso

__all__ = [
    "EXPORT_FORMATS",
    "AddItems",
    "Dataset",
    "RemoveItems",
    "chat_example",
    "check_item",
    "export_items",
    "get_dataset",
    "items_from_generations",
    "list_datasets",
    "list_items",
]

EXPORT_FORMATS = ("openai-chat", "jsonl", "csv")
ExportFormat = Literal["openai-chat", "jsonl", "csv"]
_MAX_ITEM = 1_000_000  # bytes of one item's JSON
_CHUNK = 500
d, di = t.datasets, t.dataset_items


@dataclass(frozen=True, slots=True)
class Dataset:
    id: int
    project_id: int
    name: str
    version: int
    description: str | None
    created_us: int
    updated_us: int
    items: int = 0  # in the current version

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "items": self.items,
            "createdAt": iso(self.created_us),
            "updatedAt": iso(self.updated_us),
        }


def check_item(item: Any, where: str) -> dict[str, Any]:
    """One item (``{"input", "expectedOutput"?, "metadata"?}``) checked; InvalidInput naming ``where``."""
    if not isinstance(item, Mapping):
        raise InvalidInput(f"{where}: expected an object with input", field=where)
    for key in item:
        if key not in ("input", "expectedOutput", "metadata", "sourceGenerationId"):
            raise InvalidInput(f"{where}.{key}: unknown field of a dataset item", field=f"{where}.{key}")
    if item.get("input") is None:
        raise InvalidInput(f"{where}.input: required", field=f"{where}.input")
    metadata = item.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise InvalidInput(f"{where}.metadata: expected an object", field=f"{where}.metadata")
    source = item.get("sourceGenerationId")
    if source is not None and (not isinstance(source, str) or not 0 < len(source) <= 200):
        raise InvalidInput(f"{where}.sourceGenerationId: expected an id", field=f"{where}.sourceGenerationId")
    try:
        text = orjson.dumps(item)
    except TypeError:
        raise InvalidInput(f"{where}: not JSON", field=where) from None
    if len(text) > _MAX_ITEM or b"\\u0000" in text:
        raise InvalidInput(f"{where}: larger than {_MAX_ITEM} bytes or holds a NUL", field=where)
    return {
        "input": item["input"],
        "expectedOutput": item.get("expectedOutput"),
        "metadata": dict(metadata),
        "sourceGenerationId": source,
    }


def _dataset(row: Any, items: int = 0) -> Dataset:
    return Dataset(
        row.id, row.project_id, row.name, row.version, row.description, row.created_us, row.updated_us, items
    )


def _current(version: int) -> Any:
    return and_(
        di.c.added_version <= version, or_(di.c.removed_version.is_(None), di.c.removed_version > version)
    )


@dataclass(slots=True)
class AddItems:
    """Create the dataset ``name`` (when new) and add ``items`` to it as a new version; answers the
    dataset. With no items, a new dataset is made empty, and an existing one is left as it is."""

    project_id: int
    name: str
    description: str | None
    items: list[dict[str, Any]]
    actor: Actor
    now_us: int
    size: int = 1

    def apply(self, conn: Connection) -> Dataset:
        row = conn.execute(select(d).where(d.c.project_id == self.project_id, d.c.name == self.name)).first()
        if row is None:
            dataset_id = int(
                conn.execute(
                    insert(d)
                    .values(
                        project_id=self.project_id,
                        name=self.name,
                        version=1,
                        description=self.description,
                        created_us=self.now_us,
                        updated_us=self.now_us,
                    )
                    .returning(d.c.id)
                ).scalar_one()
            )
            version = 1
        else:
            dataset_id, version = row.id, row.version
            if self.items:
                version += 1
                values: dict[str, Any] = {"version": version, "updated_us": self.now_us}
                if self.description is not None:
                    values["description"] = self.description
                conn.execute(update(d).where(d.c.id == dataset_id).values(**values))
        if self.items:
            conn.execute(
                insert(di),
                [
                    {
                        "dataset_id": dataset_id,
                        "input": item["input"],
                        "expected_output": item["expectedOutput"],
                        "metadata": item["metadata"],
                        "source_generation_id": item["sourceGenerationId"],
                        "added_version": version,
                        "removed_version": None,
                        "created_us": self.now_us,
                    }
                    for item in self.items
                ],
            )
        record_audit(
            conn,
            self.actor,
            "dataset.add" if row is not None else "dataset.create",
            f"{self.name} v{version}",
            project_id=self.project_id,
            details={"items": len(self.items)},
            now_us=self.now_us,
        )
        return _get(conn, self.project_id, self.name)


@dataclass(slots=True)
class RemoveItems:
    """Remove items (by id) from a dataset as a new version; answers the dataset."""

    project_id: int
    name: str
    item_ids: list[int]
    actor: Actor
    now_us: int
    size: int = 1

    def apply(self, conn: Connection) -> Dataset:
        dataset = _get(conn, self.project_id, self.name)
        version = dataset.version + 1
        removed = conn.execute(
            update(di)
            .where(di.c.dataset_id == dataset.id, di.c.id.in_(self.item_ids), _current(dataset.version))
            .values(removed_version=version)
        ).rowcount
        if not removed:
            raise NotFound("none of those items is in the dataset's current version")
        conn.execute(update(d).where(d.c.id == dataset.id).values(version=version, updated_us=self.now_us))
        record_audit(
            conn,
            self.actor,
            "dataset.remove",
            f"{self.name} v{version}",
            project_id=self.project_id,
            details={"items": removed},
            now_us=self.now_us,
        )
        return _get(conn, self.project_id, self.name)


def _count(conn: Connection, dataset_id: int, version: int) -> int:
    return int(conn.scalar(select(func.count()).where(di.c.dataset_id == dataset_id, _current(version))) or 0)


def _get(conn: Connection, project_id: int, name: str) -> Dataset:
    row = conn.execute(select(d).where(d.c.project_id == project_id, d.c.name == name)).first()
    if row is None:
        raise NotFound(f"no dataset {name!r} in this project")
    return _dataset(row, _count(conn, row.id, row.version))


def get_dataset(conn: Connection, project_id: int, name: str, version: int | None = None) -> Dataset:
    """The dataset ``name`` (as of ``version``: its items then); NotFound when there is none."""
    dataset = _get(conn, project_id, name)
    if version is None or version == dataset.version:
        return dataset
    if not 1 <= version <= dataset.version:
        raise InvalidInput(f"version: {name} has versions 1 to {dataset.version}", field="version")
    return Dataset(
        dataset.id,
        project_id,
        name,
        version,
        dataset.description,
        dataset.created_us,
        dataset.updated_us,
        _count(conn, dataset.id, version),
    )


def list_datasets(conn: Connection, project_id: int) -> list[Dataset]:
    """The project's datasets, by name, with their current item counts."""
    rows = conn.execute(select(d).where(d.c.project_id == project_id).order_by(d.c.name)).all()
    return [_dataset(row, _count(conn, row.id, row.version)) for row in rows]


def _item_wire(row: Any) -> dict[str, Any]:
    out = {"id": row.id, "input": row.input, "expectedOutput": row.expected_output, "metadata": row.metadata}
    if row.source_generation_id:
        out["sourceGenerationId"] = row.source_generation_id
    return out


def list_items(conn: Connection, dataset: Dataset, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
    """Items of the dataset's version (``dataset.version``), by id, after ``after``."""
    q = (
        select(di)
        .where(di.c.dataset_id == dataset.id, _current(dataset.version), di.c.id > after)
        .order_by(di.c.id)
        .limit(limit)
    )
    return [_item_wire(r) for r in conn.execute(q)]


def _text(value: Any) -> Any:
    return value if isinstance(value, str) or value is None else orjson.dumps(value).decode()


def export_items(db: Database, dataset: Dataset, fmt: str) -> Iterator[bytes]:
    """The dataset's items as a file, in pieces: ``openai-chat`` (items without an expected output
    are left out: there is nothing to learn), ``jsonl`` (``{"id", "input", "expectedOutput",
    "metadata"}`` a line) or ``csv``."""
    if fmt not in EXPORT_FORMATS:
        raise InvalidInput(f"format: expected one of {', '.join(EXPORT_FORMATS)}", field="format")
    after = 0
    if fmt == "csv":
        yield b"id,input,expectedOutput,metadata\r\n"
    while True:
        with db.read() as conn:
            items = list_items(conn, dataset, after, _CHUNK)
        if not items:
            return
        after = items[-1]["id"]
        yield b"".join(_exported(item, fmt) for item in items)


def _exported(item: Mapping[str, Any], fmt: str) -> bytes:
    if fmt == "openai-chat":
        example = chat_example(item["input"], item["expectedOutput"])
        return orjson.dumps(example) + b"\n" if example else b""
    if fmt == "jsonl":
        return orjson.dumps(item) + b"\n"
    buffer = io.StringIO()
    row = [
        item["id"],
        _text(item["input"]),
        _text(item["expectedOutput"]),
        orjson.dumps(item["metadata"]).decode(),
    ]
    csv.writer(buffer).writerow([csv_cell(v) for v in row])
    return buffer.getvalue().encode()


def items_from_generations(records: Sequence[Mapping[str, Any]], expected: str) -> list[dict[str, Any]]:
    """Dataset items from generation records: the input, and as the expected output the record's output
    (``expected="output"``) or its user's better response (``"betterResponse"``; records without one
    are left out)."""
    items = []
    for record in records:
        if expected == "betterResponse":
            answer = (record.get("feedback") or {}).get("betterResponse")
            if not answer:
                continue
        else:
            answer = (record.get("output") or {}).get("content")
        items.append(
            {
                "input": (record.get("input") or {}).get("content"),
                "expectedOutput": answer,
                "metadata": {
                    "model": (record.get("model") or {}).get("id"),
                    "template": (record.get("template") or {}).get("name"),
                },
                "sourceGenerationId": record["id"],
            }
        )
    return items
