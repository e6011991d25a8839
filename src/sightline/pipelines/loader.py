"""Finding pipeline functions: the built-ins and the ``custom_*.py`` files of the functions folder.

A ``custom_*.py`` file holds plain Python functions; each function defined in it (not imported into it,
and not named with a leading ``_``) is a pipeline function. Its parameters' annotations and ``@returns``
(or its return annotation) say what it takes and gives. Functions with ``*args`` or ``**kwargs`` are
refused, and a file that fails to import is reported with its error, never skipped silently.

Custom files are user code: the server imports them only in a sandbox worker process
(:mod:`sightline.pipelines.sandbox`), never in its own.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from . import builtins, convert
from .expression import Param, Signature

BUILTIN_SOURCE = "builtin"
MAX_FILES = 200
MAX_DOC = 2_000


class FunctionRefused(ValueError):
    """A function that cannot be used in pipelines (its message says why)."""


@dataclass(frozen=True, slots=True)
class FunctionInfo:
    name: str
    source: str  # "builtin", or the custom_*.py file's name
    signature: Signature
    doc: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "signature": self.signature.to_json(),
            "doc": self.doc,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FunctionInfo:
        return cls(data["name"], data["source"], Signature.from_json(data["signature"]), data.get("doc"))


def signature_of(fn: Callable[..., Any]) -> Signature:
    """The pipeline signature of ``fn``, or :class:`FunctionRefused`."""
    name = getattr(fn, "__name__", "?")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        raise FunctionRefused(f"{name}: its signature cannot be read") from None
    params = []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise FunctionRefused(f"functions with *args or **kwargs cannot be used in pipelines: {name}")
        if p.kind is p.POSITIONAL_ONLY or p.kind is p.KEYWORD_ONLY:
            pass  # positional-only are passed positionally, keyword-only by name: the executor binds by name
        annotation = None if p.annotation is p.empty else convert.type_name(p.annotation)
        params.append(Param(p.name, annotation, p.default is p.empty))
    declared = getattr(fn, "__sightline_returns__", None)
    if declared is None and sig.return_annotation is not sig.empty:
        declared = convert.type_name(sig.return_annotation)
    return Signature("function", tuple(params), declared)


def _doc(fn: Callable[..., Any]) -> str | None:
    doc = inspect.getdoc(fn)
    return doc[:MAX_DOC] if doc else None


def builtin_functions() -> dict[str, FunctionInfo]:
    return {
        name: FunctionInfo(name, BUILTIN_SOURCE, signature_of(fn), _doc(fn))
        for name, fn in builtins.BUILTINS.items()
    }


def custom_files(functions_dir: Path | None) -> list[Path]:
    if functions_dir is None or not functions_dir.is_dir():
        return []
    return sorted(functions_dir.glob("custom_*.py"))[:MAX_FILES]


def load_module(path: Path) -> ModuleType:
    """Import ``path`` as a module of its own (not kept in ``sys.modules``). Only in a sandbox worker."""
    module_name = f"sightline_custom_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path.name}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # for dataclasses and pickling while it runs
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(module_name, None)
    return module


def module_functions(module: ModuleType) -> dict[str, Callable[..., Any]]:
    """The pipeline functions a custom module defines (imported names and ``_names`` left out)."""
    return {
        name: value
        for name, value in vars(module).items()
        if not name.startswith("_") and inspect.isfunction(value) and value.__module__ == module.__name__
    }


def error_line(error: BaseException) -> str:
    """An error as one line: its type and message, and the line of the file where it happened."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if "custom_" in Path(f.filename).name]
    where = f" (line {frames[-1].lineno})" if frames else ""
    message = str(error).splitlines()[0][:300] if str(error) else ""
    return f"{type(error).__name__}: {message}{where}" if message else f"{type(error).__name__}{where}"


def discover_custom(functions_dir: Path | None) -> tuple[dict[str, FunctionInfo], list[dict[str, str]]]:
    """The functions of every ``custom_*.py`` file, and an error per file or function that cannot be used.

    Imports user code: call it in a sandbox worker (:meth:`Sandbox.discover`)."""
    found: dict[str, FunctionInfo] = {}
    errors: list[dict[str, str]] = []
    for path in custom_files(functions_dir):
        try:
            module = load_module(path)
        except BaseException as error:  # noqa: BLE001 - user code may raise anything, SystemExit too
            errors.append({"file": path.name, "message": error_line(error)})
            continue
        for name, fn in module_functions(module).items():
            if name in found or name in builtins.BUILTINS:
                errors.append({"file": path.name, "message": f"{name}: defined twice (the first is kept)"})
                continue
            try:
                found[name] = FunctionInfo(name, path.name, signature_of(fn), _doc(fn))
            except FunctionRefused as refused:
                errors.append({"file": path.name, "message": str(refused)})
    return found, errors
