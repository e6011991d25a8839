"""What a person does in the dashboard, in Chromium, on data the SDK sent to a real server."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Browser, Page, expect

from tests.dashboard.conftest import SCRIPT_REPLY, Dashboard, login


def test_login_is_required_and_logout_ends_the_session(page: Page) -> None:
    page.goto("/generations?userId=alice")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    expect(page).to_have_title("Log in · Sightline")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")

    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("admin-password-1")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/generations\?userId=alice$"))  # back where it was going
    cookie = next(c for c in page.context.cookies() if c["name"] == "sightline_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto("/generations")
    expect(page).to_have_url(re.compile(r"/login"))


def test_generations_filtered_by_user_id_keep_the_filter_in_the_address(
    page: Page, dashboard: Dashboard
) -> None:
    login(page)
    expect(page).to_have_title("Generations · Sightline")
    table = page.get_by_role("table", name="Generations")
    expect(table.locator("tbody tr")).to_have_count(7)  # everything the SDK sent, newest first
    page.get_by_label("User id").fill("alice")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"userId=alice"))
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(2)
    for i in range(2):
        expect(rows.nth(i).locator("td[data-label=User]")).to_have_text("alice")
        expect(rows.nth(i).locator("td[data-label=Template]")).to_have_text("emoji")
    # the address alone gives the same view (it can be shared)
    shared = page.url
    page.goto("/generations")
    page.goto(shared)
    expect(page.get_by_label("User id")).to_have_value("alice")
    expect(rows).to_have_count(2)
    # the error is found by its status, and cache, feedback and metadata filters are in the address too
    page.goto("/generations?status=error")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("error")
    page.goto("/generations?meta=plan%3Dpro&cacheHit=false")
    expect(rows).to_have_count(2)


def test_one_generation_shows_template_apart_metadata_link_and_timings(
    page: Page, dashboard: Dashboard
) -> None:
    login(page)
    page.goto(f"/generations?userId=alice&chatId={dashboard.seeded.chat_id}")
    page.get_by_role("table", name="Generations").locator("tbody tr").last.click()  # the oldest: soccer
    page.get_by_role("link", name="Open full page").click()  # the row opened in the side panel
    expect(page).to_have_url(re.compile(dashboard.seeded.alice[0]))
    expect(page).to_have_title(re.compile(r"^gpt-4o-mini · .* · Sightline$"))
    link = page.get_by_role("link", name="Ticket T-1")
    expect(link).to_have_attribute("href", "https://tracker.example/T-1")
    params = page.locator(".template-params")
    expect(params.locator("dt")).to_have_text(["sport"])
    expect(params.locator("dd")).to_have_text(["soccer"])
    expect(page.get_by_text("Show me an emoji for the sport: {sport}")).to_be_visible()
    expect(page.get_by_text("Show me an emoji for the sport: soccer")).to_be_visible()
    expect(page.locator(".output")).to_have_text("Goal: a soccer ball")
    for label in ("Latency", "Tokens / s"):
        expect(page.locator(".stat", has_text=label).locator(".stat-value")).to_have_text(re.compile(r"\d"))
    expect(page.get_by_role("link", name=f"Chat {dashboard.seeded.chat_id}")).to_be_visible()
    # a streamed call also has its time to first token
    page.goto("/generations?userId=dave")
    page.get_by_role("table", name="Generations").locator("tbody tr").first.click()
    expect(page.locator(".side-panel .stat", has_text="First token").locator(".stat-value")).to_have_text(
        re.compile(r"\d")
    )
    page.get_by_role("link", name="Open full page").click()
    expect(page.locator(".stat", has_text="First token").locator(".stat-value")).to_have_text(
        re.compile(r"\d")
    )


def test_json_in_an_answer_is_formatted(page: Page, dashboard: Dashboard) -> None:
    login(page)
    page.goto(f"/generations/{dashboard.seeded.alice[1]}")
    code = page.locator(".output pre code")
    expect(code).to_have_class(re.compile("language-json"))
    expect(code).to_contain_text('"emoji": "tennis ball",\n  "sport"')  # pretty-printed


def test_feedback_sent_from_the_page_shows_on_it(page: Page, dashboard: Dashboard) -> None:
    login(page)
    page.goto(f"/generations/{dashboard.seeded.run_calls[0]}")
    form = page.locator("form.feedback-form")
    form.get_by_label("4★").check()
    form.get_by_label("▲ up").check()
    form.get_by_label("Comment").fill("Clear and short <i>really</i>")
    form.get_by_label("Better response").fill("Dear team, …")
    form.get_by_role("button", name="Send feedback").click()
    expect(page.get_by_role("status")).to_have_text("Feedback saved.")
    item = page.locator(".feedback-list li").first
    expect(item).to_contain_text("★4 ▲")
    expect(item).to_contain_text("Clear and short <i>really</i>")
    expect(item).to_contain_text("by admin")
    expect(page.locator(".stat", has_text="Feedback")).to_contain_text("★4")
    # and the table can be narrowed to generations with good feedback
    page.goto("/generations?feedback.minRating=4")
    expect(page.get_by_role("table", name="Generations").locator("tbody tr")).to_have_count(1)
    # a form with nothing in it says what is missing and changes nothing
    page.goto(f"/generations/{dashboard.seeded.run_calls[1]}")
    page.get_by_role("button", name="Send feedback").click()
    expect(page.locator(".flash-error")).to_contain_text("Give a rating")
    expect(page.get_by_text("No feedback yet.")).to_be_visible()


def test_a_run_shows_its_steps_in_order_with_its_user_and_metadata(page: Page, dashboard: Dashboard) -> None:
    login(page)
    page.get_by_role("link", name="Runs").click()
    page.get_by_label("User id").fill("carol")
    page.get_by_role("button", name="Filter").click()
    runs = page.get_by_role("table", name="Runs").locator("tbody tr")
    expect(runs).to_have_count(1)
    expect(runs.first).to_contain_text("compose-email")
    runs.first.get_by_role("link").first.click()  # opens in the side panel, beside the list
    page.get_by_role("link", name="Open full page").click()
    expect(page).to_have_title("Run compose-email · Sightline")
    steps = page.locator("ol.steps > li")
    expect(steps.locator(".step-name")).to_have_text(["retrieve", "gpt-4o-mini", "gpt-4o-mini", "send"])
    expect(steps.locator(".step-index")).to_have_text(["0", "1", "2", "3"])
    expect(steps.nth(1).locator(".step-timing")).to_contain_text("ms")
    expect(page.locator(".stat", has_text="User")).to_contain_text("carol")
    metadata = page.locator("section", has=page.get_by_role("heading", name="Metadata"))
    expect(metadata).to_contain_text("plan")
    expect(metadata).to_contain_text("team")
    steps.nth(1).locator(".step-name").click()
    expect(page).to_have_url(re.compile(dashboard.seeded.run_calls[0]))


def test_a_chat_shows_its_generations_in_order(page: Page, dashboard: Dashboard) -> None:
    login(page)
    page.goto(f"/chats/{dashboard.seeded.chat_id}")
    turns = page.locator("ol.chat > li")
    expect(turns).to_have_count(2)
    expect(turns.nth(0).locator(".bubble-user")).to_contain_text("soccer")
    expect(turns.nth(1).locator(".bubble-user")).to_contain_text("tennis")
    expect(page.locator(".chat-system")).to_contain_text("You answer with emoji.")


def test_analytics_draws_charts(page: Page) -> None:
    login(page)
    page.get_by_role("link", name="Analytics").click()
    expect(page).to_have_title("Analytics · Sightline")
    expect(page.locator(".stat", has_text="Requests").locator(".stat-value")).to_have_text("7")
    for chart in ("requests", "tokens", "cost", "latency", "errors", "users", "templates"):
        canvas = page.locator(f'canvas[data-chart="{chart}"]')
        expect(canvas).to_have_attribute("data-drawn", "true")
        painted = canvas.evaluate(
            """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                      let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }"""
        )
        assert painted > 500, f"{chart} chart is blank"
    # the same numbers stay available as a table
    users = page.locator("#chart-users details.chart-table")
    users.locator("summary").click()
    expect(users.get_by_role("link", name="bob")).to_have_attribute("href", re.compile(r"userId=bob"))
    page.get_by_label("Time range").select_option("30d")
    expect(page).to_have_url(re.compile(r"range=30d"))


def test_prompts_list_templates_with_use_and_versions(page: Page) -> None:
    login(page)
    page.get_by_role("link", name="Prompts").click()
    row = page.get_by_role("table", name="Prompts").locator("tbody tr", has_text="emoji")
    expect(row.locator("td").nth(3)).to_have_text("2")
    row.get_by_role("link", name="emoji").click()
    expect(page).to_have_title("Prompt emoji · Sightline")
    expect(page.locator("details.version").first).to_contain_text("Show me an emoji for the sport: {sport}")


def test_a_member_gets_403_on_admin_pages(page: Page) -> None:
    login(page, "member")
    expect(page.get_by_role("navigation", name="Sections").get_by_role("link", name="Admin")).to_have_count(0)
    for path in ("/admin/users", "/admin/keys", "/admin/providers"):
        response = page.goto(path)
        assert response is not None and response.status == 403, path
        expect(page.get_by_role("heading", level=1)).to_contain_text("Not allowed")
    # a member reads and judges generations all the same
    page.goto("/generations")
    expect(page.get_by_role("table", name="Generations").locator("tbody tr")).to_have_count(7)


def test_user_supplied_html_shows_as_text(page: Page, dashboard: Dashboard) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    login(page)
    page.goto(f"/generations/{dashboard.seeded.bob_script}")
    expect(page.locator(".output")).to_have_text(SCRIPT_REPLY)
    expect(page.get_by_text("<b>bold?</b> <script>alert('in')</script>")).to_be_visible()
    page.goto("/generations?userId=bob")
    expect(page.get_by_role("table", name="Generations")).to_be_visible()
    assert dialogs == []
    assert page.locator("main script:not([type='application/json'])").count() == 0
    assert page.locator("main img").count() == 0


def test_admin_makes_a_key_shown_once_and_revokes_it(page: Page, dashboard: Dashboard) -> None:
    login(page)
    page.goto("/admin/keys")
    page.get_by_label("Name (optional)").fill("browser-test")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-key").inner_text()
    assert secret.startswith("sl_")
    api = httpx.Client(base_url=dashboard.url, headers={"Authorization": f"Bearer {secret}"})
    assert api.get("/api/generations?limit=1").status_code == 200
    page.goto("/admin/keys")
    expect(page.locator("#new-key")).to_have_count(0)
    assert secret not in page.content()
    row = page.get_by_role("table", name="API keys").locator("tbody tr", has_text="browser-test")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_contain_text("Revoked key")
    expect(row).to_contain_text("revoked")
    assert api.get("/api/generations?limit=1").status_code == 401


def test_admin_adds_a_member_who_can_log_in(page: Page) -> None:
    login(page)
    page.goto("/admin/users")
    form = page.locator("form", has=page.get_by_role("button", name="Add user"))
    form.get_by_label("Username").fill("erin")
    form.get_by_label("Password").fill("erin-password")
    form.get_by_role("button", name="Add user").click()
    expect(page.get_by_role("status")).to_have_text("Added member erin.")
    expect(page.get_by_role("table", name="Users")).to_contain_text("erin")


def test_a_form_without_its_csrf_token_is_refused(page: Page, dashboard: Dashboard) -> None:
    login(page)
    response = page.request.post(
        f"/generations/{dashboard.seeded.alice[0]}/feedback", form={"rating": "1", "csrf": "forged"}
    )
    assert response.status == 403
    page.goto(f"/generations/{dashboard.seeded.alice[0]}")
    expect(page.get_by_text("No feedback yet.")).to_be_visible()


def test_pages_fit_a_phone_screen(page: Page, dashboard: Dashboard) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    login(page)
    for path in (
        "/generations",
        f"/generations/{dashboard.seeded.alice[1]}",
        f"/runs/{dashboard.seeded.run_id}",
        "/analytics",
        "/prompts",
        "/admin/keys",
    ):
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 391, f"{path} is {width}px wide on a 390px screen"


def test_admin_adds_a_provider_key_that_is_never_shown(page: Page) -> None:
    login(page)
    page.goto("/admin/providers")
    form = page.locator("form", has=page.get_by_role("button", name="Add key"))
    form.get_by_label("Name").fill("local-llm")
    form.get_by_label("Base URL").fill("http://127.0.0.1:9/v1")
    form.get_by_label("API key").fill("sk-provider-secret-123")
    form.get_by_role("button", name="Add key").click()
    expect(page.get_by_role("status")).to_contain_text("Added provider local-llm")
    row = page.get_by_role("table", name="Provider keys").locator("tbody tr", has_text="local-llm")
    expect(row).to_contain_text("http://127.0.0.1:9/v1")
    expect(row).to_contain_text("default")
    assert "sk-provider-secret-123" not in page.content()
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Remove").click()
    expect(page.get_by_role("status")).to_have_text("Removed the provider.")
    expect(page.get_by_role("table", name="Provider keys")).not_to_contain_text("local-llm")


def test_without_javascript_every_chart_is_a_table(browser: Browser, dashboard: Dashboard) -> None:
    context = browser.new_context(base_url=dashboard.url, java_script_enabled=False)
    page = context.new_page()
    try:
        login(page)
        page.goto("/analytics")
        requests = page.locator("#chart-requests")
        expect(requests.locator("canvas")).to_be_hidden()
        expect(requests.get_by_role("table")).to_be_visible()
        expect(requests.get_by_role("columnheader", name="gpt-4o-mini")).to_be_visible()
        page.goto("/generations")
        page.get_by_label("User id").fill("bob")
        page.get_by_role("button", name="Filter").click()
        expect(page.get_by_role("table", name="Generations").locator("tbody tr")).to_have_count(2)
    finally:
        context.close()
