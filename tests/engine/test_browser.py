"""The Engine page in Chromium against a live daphne: approvals and new tasks appear without reload."""

import threading

import pytest
from django.db import connection
from playwright.sync_api import expect

from juggernaut.engine import services

pytestmark = pytest.mark.browser


def test_it_approves_a_waiting_task_and_shows_new_tasks_live(signed_in_page, hq_server):
    page = signed_in_page
    waiting = services.task_create("Deploy hotfix", kind="noop", needs_approval=True)

    page.goto(hq_server + "/engine/")
    item = page.locator(f"#engine-waiting-{waiting.pk}")
    expect(item).to_contain_text("Deploy hotfix")
    expect(item).to_contain_text("need an operator's approval")
    expect(page.locator("body")).to_have_attribute("data-live", "open")

    item.get_by_role("button", name="Approve").click()

    expect(page.locator(f"#engine-waiting-{waiting.pk}")).to_have_count(0)
    expect(page.locator(f"#engine-task-{waiting.pk}")).to_contain_text("Pending")
    expect(page.locator("#hq-flash")).to_contain_text("approved")

    created: list[int] = []

    def create() -> None:
        try:
            created.append(services.task_create("Made elsewhere", kind="noop").pk)
        finally:
            connection.close()

    thread = threading.Thread(target=create)
    thread.start()
    thread.join(10)
    assert created
    expect(page.locator(f"#engine-task-{created[0]}")).to_contain_text("Made elsewhere")
    expect(page.locator("#engine-count-pending .n")).to_have_text("2")
