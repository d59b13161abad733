"""In Chromium, under the Content-Security-Policy: every HQ page, the admin and the API docs work with
zero console errors and zero policy violations."""

import pytest
import requests
from playwright.sync_api import expect

from juggernaut.engine.models import Task
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

PAGES = ["/", "/engine/", "/settings/", "/areas/chat/", "/chat/", "/admin/", "/admin/auth/user/", "/api/docs"]


def watch(page) -> list[str]:
    problems: list[str] = []
    page.on(
        "console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    return problems


def test_it_sends_a_policy_allowing_only_the_hqs_own_scripts_and_styles(hq_server):
    policy = requests.get(hq_server + "/login/", timeout=10).headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["default-src"] == "'self'" and directives["frame-ancestors"] == "'none'"


def test_it_runs_every_page_without_a_console_error_under_the_policy(
    page, hq_server, alice, transactional_db
):
    alice.is_superuser = True
    alice.save()
    Task.objects.create(title="csp check", kind="noop")
    problems = watch(page)
    page.goto(hq_server + "/login/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    page.wait_for_selector(".msg-error")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(hq_server + "/")
    page.wait_for_selector("#live-indicator.live-open")  # htmx and its websocket ran
    for path in PAGES:
        page.goto(hq_server + path)
        page.wait_for_load_state("networkidle")
    page.wait_for_selector(".swagger-ui .opblock")  # the docs page rendered its operations
    page.goto(hq_server + "/engine/")
    page.fill("#engine-new-task input[name=title]", "from the browser")
    page.fill("#engine-new-task input[name=kind]", "noop")
    page.click("#engine-new-task button[type=submit]")
    page.wait_for_selector("#hq-flash .msg-success")
    # the moved script resets the form once htmx has settled the answer (just after the flash shows)
    expect(page.locator("#engine-new-task input[name=title]")).to_have_value("")
    assert problems == []


def test_it_signs_in_through_the_admin_login_under_the_policy(page, hq_server, alice, transactional_db):
    problems = watch(page)
    page.goto(hq_server + "/admin/login/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(hq_server + "/admin/")
    assert problems == []
