"""The one-way dependencies of DESIGN.md, checked on the source.

leaves <- sdk <- compat; leaves <- store <- gateway/pipelines/evals/jobs <- server <- cli; no circles.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "sightline"

# package -> sightline packages it must never import
UPPER = {"server", "gateway", "pipelines", "evals", "jobs", "compat", "cli", "sdk", "store", "settings"}
FORBIDDEN = {
    "sdk": UPPER - {"sdk"},
    "compat": UPPER - {"sdk", "compat"},
    "store": UPPER - {"store", "settings"},
    "gateway": {"server", "cli", "sdk", "compat"},
    "pipelines": {"server", "cli", "sdk", "compat"},
    "evals": {"server", "cli", "sdk", "compat"},
    "jobs": {"server", "cli", "sdk", "compat"},
    "server": {"cli", "sdk"},
}
# the leaf modules beside the packages: they import no package of sightline
LEAVES = ["errors", "feedback_key", "ids", "mapping", "schema", "templating"]
# third-party packages a layer must not import
FORBIDDEN_THIRD_PARTY = {
    "sdk": {"fastapi", "starlette", "sqlalchemy", "alembic", "uvicorn", "jinja2", "redis", "genai_prices"},
    "store": {"fastapi", "starlette", "uvicorn", "jinja2", "httpx"},
    "gateway": {"fastapi"},
}


def _imports(path: Path) -> set[str]:
    """Absolute module names imported by a file (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    package = path.relative_to(SRC.parent).with_suffix("").parts
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level]
                module = ".".join((*base, node.module) if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


for _leaf in LEAVES:
    FORBIDDEN[_leaf] = UPPER


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_what_it_may(layer: str) -> None:
    offences = []
    leaf = SRC / f"{layer}.py"
    paths = [leaf] if leaf.exists() else (SRC / layer).rglob("*.py")  # a package not yet written: none
    for path in paths:
        for module in _imports(path):
            parts = module.split(".")
            if parts[0] == "sightline" and len(parts) > 1 and parts[1] in FORBIDDEN[layer]:
                offences.append(f"{path.relative_to(SRC)} imports {module}")
            if parts[0] in FORBIDDEN_THIRD_PARTY.get(layer, set()):
                offences.append(f"{path.relative_to(SRC)} imports {module}")
    assert not offences, "\n".join(sorted(set(offences)))


def test_importing_sightline_has_no_side_effects() -> None:
    import subprocess
    import sys

    code = (
        "import os, sys, threading, logging; before = dict(os.environ); import sightline; "
        "assert dict(os.environ) == before; assert threading.active_count() == 1; "
        "assert not logging.getLogger().handlers; "
        "assert not any(m.startswith(('sightline.store', 'sightline.server', 'fastapi', 'sqlalchemy')) "
        "for m in sys.modules), sorted(m for m in sys.modules if m.startswith('sightline'))"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Which sightline modules each sightline module imports (anywhere in it, functions included)."""
    modules = {_module_name(path): path for path in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {module for module in _imports(path) if module in modules}
        # ``from package import submodule`` names both: the submodule stands for its package
        graph[name] = {m for m in targets if not any(o.startswith(m + ".") for o in targets)} - {name}
    return graph


def test_no_two_modules_import_each_other() -> None:
    graph = _import_graph()
    circles = set()
    for start in graph:
        # depth-first from each module: a path that comes back to it is a circle
        stack = [(start, (start,))]
        seen = set()
        while stack:
            node, path = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    circles.add(" -> ".join((*path, start)))
                elif nxt not in seen and not start.startswith(nxt + ".") and not nxt.startswith(start + "."):
                    seen.add(nxt)
                    stack.append((nxt, (*path, nxt)))
    assert not circles, "\n".join(sorted(circles))
