"""MkDocs hook: the settings page's list of settings, made from the server's settings object.

The rows are ``sightline.settings.Settings``' fields, in their order, so a new setting appears in the
guide without anyone copying it; each row's default and meaning come from the README's settings table
(which ``tests/test_settings.py`` keeps complete). A setting missing there fails the build.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

MARKER = "<!-- settings-table -->"
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_rows(text: str) -> dict[str, tuple[str, str]]:
    """``{setting: (default, meaning)}`` from the README's settings table, whose rows read
    ``| `name` | `SIGHTLINE_NAME` | default | meaning |``."""
    rows: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) == 4 and cells[0].startswith("`") and cells[1].startswith("`SIGHTLINE_"):
            rows[cells[0].strip("`")] = (cells[2], cells[3])
    return rows


def settings_table() -> str:
    """Every setting as a Markdown definition: name and environment variable, then default and meaning."""
    from sightline.settings import Settings

    known = readme_rows(README.read_text())
    missing = [name for name in Settings.model_fields if name not in known]
    if missing:
        raise PluginError(f"settings missing from the README's settings table: {missing}")
    lines = ['<div class="settings" markdown>', ""]
    for name in Settings.model_fields:
        default, meaning = known[name]
        # The README links its neighbours as docs/x.md; inside the guide they are x.md.
        meaning = meaning.replace("](docs/", "](")
        lines += [
            f"`{name}` · `SIGHTLINE_{name.upper()}`",
            f":   Default: {default}. {_sentence(meaning)}",
            "",
        ]
    return "\n".join([*lines, "</div>"])


def _sentence(text: str) -> str:
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", ")")) else text + "."


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """Put the table where the page has the marker."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, settings_table())
