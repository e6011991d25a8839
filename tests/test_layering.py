"""The one-way dependencies of DESIGN.md, checked on the source.

schema/errors <- sdk; store <- gateway/pipelines <- server <- cli.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "sightline"

# package -> sightline packages it must never import
FORBIDDEN = {
    "sdk": {"store", "server", "gateway", "pipelines", "cli", "settings"},
    "store": {"server", "gateway", "pipelines", "cli", "sdk"},
    "gateway": {"server", "cli", "sdk"},
    "pipelines": {"server", "cli", "sdk"},
    "server": {"cli", "sdk"},
}
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


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_what_it_may(layer: str) -> None:
    offences = []
    for path in (SRC / layer).rglob("*.py"):
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
