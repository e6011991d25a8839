"""/docs (Swagger UI) and /redoc (ReDoc) in Chromium with every request off this server refused, as on
a machine without the internet: both render the API from the server's own copies of their scripts,
under a Content-Security-Policy that lets no inline or foreign script run."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, Route, expect

from tests.dashboard.conftest import Dashboard


def _offline(page: Page, dashboard: Dashboard) -> list[str]:
    refused: list[str] = []

    def only_here(route: Route) -> None:
        if route.request.url.startswith(dashboard.url):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", only_here)
    return refused


def test_swagger_ui_works_without_the_internet(page: Page, dashboard: Dashboard) -> None:
    refused = _offline(page, dashboard)
    response = page.goto("/docs")
    assert response is not None and "script-src 'self';" in response.headers["content-security-policy"]
    expect(page.get_by_role("heading", name="Sightline")).to_be_visible()
    ingest = page.locator(".opblock").filter(has_text="/api/ingest").first
    expect(ingest).to_be_visible()
    ingest.locator(".opblock-summary").click()
    expect(page.get_by_role("button", name="Try it out")).to_be_visible()
    assert refused == []


def test_redoc_works_without_the_internet(browser: Browser, dashboard: Dashboard) -> None:
    context = browser.new_context(base_url=dashboard.url)
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        refused = _offline(page, dashboard)
        page.goto("/redoc")
        expect(page.get_by_role("heading", name="Sightline").first).to_be_visible()
        expect(page.get_by_text("/api/generations").first).to_be_attached()
        assert refused == []
        # ReDoc's sidebar asks for its maker's logo from their CDN (no option turns it off): the
        # policy refuses it, ReDoc then leaves it out. Nothing else may fail.
        assert [e for e in errors if "cdn.redoc.ly/redoc/logo-mini.svg" not in e] == []
    finally:
        context.close()
