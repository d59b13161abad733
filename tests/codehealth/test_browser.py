"""Code Health in Chromium against a live daphne: the drill-down, its chart, one-click "Create task",
and a scan followed live from "Scan now" to its score without a reload."""

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from codehealth import services
from codehealth.findings import Finding
from codehealth.models import Repository, Scan
from juggernaut.engine.models import Task
from tests.conftest import DaphneServer, screenshot, sign_in

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


@pytest.fixture
def roots_server(
    django_db_setup, django_db_blocker, transactional_db, tmp_path
) -> Iterator[tuple[str, Path]]:
    """A daphne that allows local checkouts under a root of this test's own."""
    roots = tmp_path / "checkouts"
    roots.mkdir()
    server = DaphneServer(env={"CODEHEALTH_LOCAL_ROOTS": str(roots)}).start()
    try:
        yield server.url, roots
    finally:
        server.close()


def test_an_admin_adds_a_repository_from_the_page_scans_it_and_pages_through_its_findings(
    page, roots_server, admin, settings
):
    hq_server, roots = roots_server
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    checkout = roots / "ledger"
    checkout.mkdir()
    for i in range(60):  # 60 modules, each with an unused import: two pages of findings
        (checkout / f"m{i:02}.py").write_text("import os\n")
    settings.CODEHEALTH_LOCAL_ROOTS = [str(roots)]  # the jobs process's settings, here
    sign_in(page, hq_server, "root")
    page.goto(hq_server + "/codehealth/")
    form = page.locator("#codehealth-add")
    form.get_by_label("or a local path").fill(str(checkout))
    form.get_by_role("button", name="Add repository").click()
    expect(page.locator("body")).to_contain_text("press Scan now")
    repository = Repository.objects.get()
    assert repository.owner == admin and page.url.endswith(f"/codehealth/{repository.pk}/")
    page.get_by_role("button", name="Scan now").click()
    expect(page.locator("body")).to_contain_text("is queued")
    # the jobs process's part, with the real analysis in the sandbox
    services.repository_scan(Repository.objects.get(pk=repository.pk))
    page.reload()
    findings = page.locator("#codehealth-findings")
    # 60 unused imports, and the dependency audit's two "not run" notes (no registry here)
    expect(findings).to_contain_text("all open (62)")
    expect(findings).to_contain_text("1–50 of 62")
    expect(findings.locator("tbody tr")).to_have_count(50)
    findings.get_by_role("link", name="next").click()
    expect(findings).to_contain_text("51–62 of 62")
    expect(findings.locator("tbody tr")).to_have_count(12)
    expect(findings.get_by_role("link", name="F401").first).to_have_attribute(
        "href", "https://docs.astral.sh/ruff/rules/unused-import/"
    )
    for width in (1440, 390):
        page.set_viewport_size({"width": width, "height": 900})
        screenshot(page, f"codehealth-pages-{width}")
    assert errors == []
