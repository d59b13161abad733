"""Code Health in Chromium against a live daphne: the drill-down, its chart, one-click "Create task",
and a scan followed live from "Scan now" to its score without a reload."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from codehealth import services
from codehealth.findings import Finding
from codehealth.models import Repository, Scan
from juggernaut.engine.models import Task
from tests.conftest import screenshot

pytestmark = pytest.mark.browser


def test_it_drills_down_and_creates_a_task_in_one_click(
    signed_in_page, hq_server, alice, tmp_path, local_repository
):
    page = signed_in_page
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    repository = local_repository(alice, tmp_path, name="acme/shop")
    for days, findings in ((14, 6), (7, 3), (0, 2)):
        scan = Scan.objects.create(repository=repository, started_at=timezone.now() - timedelta(days=days))
        services.scan_record(
            scan,
            [
                Finding(
                    "lint",
                    "ruff",
                    f"shop/module_{i}.py",
                    i + 1,
                    "F401",
                    100,
                    f"`os` imported but unused ({i})",
                    fixable=True,
                )
                for i in range(findings)
            ],
            now=scan.started_at,
        )
    services.report_build(repository)
    page.goto(hq_server + "/codehealth/")
    expect(page.locator(f"#codehealth-repository-{repository.pk}")).to_contain_text("acme/shop")
    for width in (1440, 390):
        page.set_viewport_size({"width": width, "height": 900})
        screenshot(page, f"codehealth-{width}")
    page.set_viewport_size({"width": 1280, "height": 860})
    page.get_by_role("link", name="acme/shop").click()
    expect(page.locator(".chart-svg")).to_be_visible()
    for width in (1440, 390):
        page.set_viewport_size({"width": width, "height": 900})
        screenshot(page, f"codehealth-detail-{width}")
    page.set_viewport_size({"width": 1280, "height": 860})
    page.locator("#codehealth-findings").get_by_role("button", name="Create task").first.click()
    expect(page.locator("body")).to_contain_text("is open for F401")
    assert Task.objects.filter(source="codehealth").count() == 1
    expect(page.locator("#codehealth-findings").get_by_role("link", name="Task #")).to_have_count(1)
    # a false alarm, dismissed with its reason: it leaves the open list and the score goes up
    row = page.locator("#codehealth-findings tbody tr").nth(1)
    row.get_by_placeholder("why not a problem").fill("kept for the plugin API")
    row.get_by_role("button", name="Dismiss").click()
    expect(page.locator("body")).to_contain_text("dismissed: it no longer counts")
    expect(page.locator("#codehealth-findings tbody tr")).to_have_count(1)
    expect(page.locator("#codehealth-findings")).to_contain_text("dismissed (1)")
    for width in (1440, 390):
        page.set_viewport_size({"width": width, "height": 900})
        screenshot(page, f"codehealth-dismissed-{width}")
    assert errors == []


def test_a_scan_is_followed_live_from_scan_now_to_its_score(
    signed_in_page, hq_server, alice, tmp_path, local_repository
):
    page = signed_in_page
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    (tmp_path / "app.py").write_text("import os\n")
    repository = local_repository(alice, tmp_path, name="acme/live")
    page.goto(hq_server + "/codehealth/")
    row = page.locator(f"#codehealth-repository-{repository.pk}")
    expect(row).to_contain_text("never")
    page.evaluate("window.__sameDocument = true")  # gone if anything below reloads the page
    row.get_by_role("button", name="Scan now").click()
    expect(page.locator("#hq-flash")).to_contain_text("is queued")
    expect(row).to_contain_text("queued")  # the jobs process is not running here: the queue shows
    # the jobs process's part, done here: its events reach the open page over the websocket
    scan = services.repository_scan(
        Repository.objects.get(pk=repository.pk),
        analyse=lambda path: [
            Finding("lint", "ruff", "app.py", 1, "F401", 100, "`os` imported but unused", fixable=True)
        ],
    )
    expect(row).to_contain_text(str(scan.score))
    expect(row).not_to_contain_text("queued")
    expect(page.locator("#codehealth-status")).to_contain_text("lowest score")
    assert page.evaluate("window.__sameDocument") is True
    for width in (1440, 390):
        page.set_viewport_size({"width": width, "height": 900})
        screenshot(page, f"codehealth-live-{width}")
    assert errors == []
