"""The guide as a site: it builds in strict mode, lists every setting and page, and the server serves it
at ``/guide/`` under a strict Content-Security-Policy (or says how to build it when it is not built)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml

from sightline.server.routers import guide
from sightline.settings import Settings
from tests.docs.conftest import ROOT, build_guide


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site_dir = tmp_path_factory.mktemp("site")
    done = build_guide(site_dir)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr}"
    return site_dir


def test_the_guide_builds_in_strict_mode_with_every_page(site: Path) -> None:
    for page in ("quickstart", "sdk", "gateway", "api", "queries", "prompts", "pipelines", "evaluations"):
        assert (site / page / "index.html").is_file(), page
    assert (site / "compat" / "index.html").is_file() and (site / "operations" / "index.html").is_file()
    assert (site / "search" / "search_index.json").is_file()  # the theme's search, served with the site


def test_every_page_of_docs_is_in_the_navigation() -> None:
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)

    def pages(items: list[object]) -> set[str]:
        found: set[str] = set()
        for item in items:
            for value in item.values() if isinstance(item, dict) else [item]:
                found |= pages(value) if isinstance(value, list) else {str(value)}
        return found

    in_nav = pages(config["nav"])
    written = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert written - in_nav == set(), "pages of docs/ missing from mkdocs.yml's nav"
    assert in_nav - written == set(), "mkdocs.yml's nav names pages that are not in docs/"


def test_the_settings_page_lists_every_setting_of_the_server(site: Path) -> None:
    page = (site / "settings" / "index.html").read_text()
    rows = re.findall(r"<dt><code>(\w+)</code> · <code>(SIGHTLINE_\w+)</code></dt>\s*<dd>Default: ", page)
    assert [name for name, _ in rows] == list(Settings.model_fields)
    assert all(env == f"SIGHTLINE_{name.upper()}" for name, env in rows)
    assert "<!-- settings-table -->" not in page


def test_the_sdk_page_covers_every_public_name() -> None:
    import sightline

    text = (ROOT / "docs" / "sdk.md").read_text()
    missing = [name for name in sightline.__all__ if f"sightline.{name}" not in text]
    assert missing == [], f"public names the SDK guide does not mention: {missing}"


def test_the_gateway_page_covers_every_header_the_gateway_reads() -> None:
    from sightline.gateway import context

    text = (ROOT / "docs" / "gateway.md").read_text().lower()
    headers = {*context._IDS, "x-sightline-metadata", "x-sightline-cache", "x-sightline-provider"}
    assert [h for h in sorted(headers) if f"`{h}`" not in text] == []


@pytest.fixture
async def http(sqlite_url: str) -> AsyncIterator[httpx.AsyncClient]:
    from sightline.server.app import create_app

    app = create_app(Settings(database_url=sqlite_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sightline.test") as client:
            yield client


async def test_the_server_serves_the_guide_under_a_strict_policy(
    http: httpx.AsyncClient, built_guide: Path
) -> None:
    moved = await http.get("/guide")
    assert moved.status_code == 308 and moved.headers["location"] == "/guide/"
    home = await http.get("/guide/")
    assert home.status_code == 200 and "text/html" in home.headers["content-type"]
    assert "Sightline" in home.text
    policy = home.headers["content-security-policy"]
    script_src = re.search(r"script-src ([^;]*)", policy)
    assert script_src is not None and "'unsafe-inline'" not in script_src.group(1)
    assert "'sha256-" in script_src.group(1)  # the theme's few inline scripts, and only those
    assert "'unsafe-inline'" not in re.search(r"style-src ([^;]*)", policy).group(1)  # type: ignore[union-attr]

    page = await http.get("/guide/sdk")
    assert page.status_code == 308 and page.headers["location"] == "/guide/sdk/"
    sdk = await http.get("/guide/sdk/")
    assert sdk.status_code == 200 and "CallParams" in sdk.text

    css = next(iter(built_guide.glob("assets/stylesheets/main.*.css")))
    asset = await http.get(f"/guide/assets/stylesheets/{css.name}")
    assert asset.status_code == 200 and asset.headers["content-type"].startswith("text/css")


@pytest.mark.parametrize(
    "path",
    ["/guide/nothing-here/", "/guide/../pyproject.toml", "/guide/%2e%2e/%2e%2e/settings.py", "/guide/%00"],
)
async def test_a_guide_address_that_is_not_a_page_is_a_404(
    http: httpx.AsyncClient, built_guide: Path, path: str
) -> None:
    answer = await http.get(path)
    assert answer.status_code == 404
    assert "BaseSettings" not in answer.text and "[project]" not in answer.text


async def test_before_the_guide_is_built_it_says_how_to_build_it(
    http: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(guide, "GUIDE_DIR", tmp_path / "not-built")
    for path in ("/guide/", "/guide/sdk/"):
        answer = await http.get(path)
        assert answer.status_code == 404
        assert "scripts/setup" in answer.text and "mkdocs build" in answer.text
        assert answer.headers["content-security-policy"].startswith("default-src 'self'")
