"""MkDocs hook: fit the pages to being served by any Sightline server under ``/guide/``.

``site_url`` in mkdocs.yml only gives the path (the 404 page links from it); its host is a stand-in,
so the canonical links it would put in every page are left out. The favicon is the dashboard's.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

FAVICON = Path(__file__).resolve().parents[2] / "src" / "sightline" / "server" / "static" / "favicon.svg"
_CANONICAL = re.compile(r'\s*<link rel="canonical" href="[^"]*">')


def on_post_page(output: str, page: Any, **kwargs: Any) -> str:
    """The page without its canonical link."""
    return _CANONICAL.sub("", output, count=1)


def on_post_build(config: Any, **kwargs: Any) -> None:
    """Copy the dashboard's favicon in, where ``theme.favicon`` points."""
    target = Path(config["site_dir"]) / "assets" / "favicon.svg"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FAVICON, target)
