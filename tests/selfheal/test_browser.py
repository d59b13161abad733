"""The Self-Heal page in Chromium against a live daphne: diagnose, repair from its button, see it verified."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from juggernaut.engine.models import Status, Task, Worker
from tests.conftest import BrowserProblems, screenshot

pytestmark = pytest.mark.browser


def test_it_diagnoses_and_repairs_from_the_button(signed_in_page, hq_server):
    page = signed_in_page
    problems = BrowserProblems(page)
    w = Worker.objects.create(name="w1", last_heartbeat=timezone.now() + timedelta(minutes=10))
    task = Task.objects.create(
        title="stuck",
        kind="noop",
        status=Status.RUNNING,
        lease_owner=w,
        attempts=1,
        lease_incarnation=w.incarnation,
        lease_expires_at=timezone.now() - timedelta(minutes=5),
    )
    page.goto(hq_server + "/selfheal/")
    expect(page.locator("body")).to_have_attribute("data-live", "open")
    expect(page.locator("#selfheal-report")).to_contain_text("No diagnosis yet")

    page.click("#selfheal-diagnose")
    report = page.locator("#selfheal-report")
    expect(report).to_contain_text("1 running task(s) hold an expired lease.")
    expect(report.locator("h3.selfheal-critical")).to_contain_text("Critical")
    expect(page.locator("#selfheal-progress")).to_contain_text("queue")
    expect(report.locator(".selfheal-manual").first).to_be_visible()
    for width in (1440, 390):
        page.set_viewport_size({"width": width, "height": 900})
        screenshot(page, f"selfheal-report-{width}")

    page.set_viewport_size({"width": 1440, "height": 900})
    report.get_by_role("button", name="Release expired leases…").click()
    dialog = page.locator("#selfheal-confirm dialog")
    expect(dialog).to_contain_text("it would release 1 task(s)")
    expect(dialog).to_contain_text(f"task #{task.pk}: running → pending")
    screenshot(page, "selfheal-confirm-1440")
    task.refresh_from_db()
    assert task.status == Status.RUNNING  # the dry run changed nothing

    dialog.get_by_role("button", name="Run repair").click()
    expect(page.locator("#hq-flash")).to_contain_text("in progress: 1 of 1 task")
    expect(page.locator("#selfheal-confirm dialog")).to_have_count(0)
    history = page.locator("#selfheal-history")
    expect(history).to_contain_text("… 1 running task(s) hold an expired lease.")
    expect(history).not_to_contain_text("✓"), "released is not fixed: the task has yet to run again"
    task.refresh_from_db()
    assert task.status == Status.PENDING
    page.set_viewport_size({"width": 390, "height": 900})
    screenshot(page, "selfheal-history-390")
    assert problems.items == []
