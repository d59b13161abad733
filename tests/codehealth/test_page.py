"""The Code Health pages as an operator uses them, the Overview's line, and the chat tools."""

from datetime import timedelta

import pytest
from django.utils import timezone

from codehealth import services, tools
from codehealth.findings import Finding
from codehealth.models import CodeFinding, Repository, Scan
from codehealth.score import score_of
from juggernaut.engine.models import Task
from juggernaut.hq import AREAS
from juggernaut.tools import acting_as

pytestmark = pytest.mark.django_db

UNUSED = Finding("lint", "ruff", "app/x.py", 1, "F401", 100, "`os` imported but unused", fixable=True)
VULN = Finding("dependency", "vulnerable", "pyproject.toml", 3, "django", 100, "GHSA-1234: upgrade to 5.2.1")


def scan(repository, *findings, at=None) -> Scan:
    row = Scan.objects.create(repository=repository, started_at=at or timezone.now())
    return services.scan_record(row, list(findings), now=at)


@pytest.fixture
def repository(alice, tmp_path, local_repository):
    return local_repository(alice, tmp_path, name="shop")


def test_it_lists_repositories_with_score_and_scan_button(alice_client, repository):
    scan(repository, UNUSED)
    page = alice_client.get("/codehealth/").content.decode()
    assert f'id="codehealth-repository-{repository.pk}"' in page
    assert "shop" in page and "Scan now" in page
    assert str(score_of({"lint_error": 1})) in page


def test_the_drill_down_shows_the_chart_findings_and_create_task(alice_client, repository):
    earlier = timezone.now() - timedelta(days=7)
    scan(repository, at=earlier)
    scan(repository, UNUSED)
    page = alice_client.get(f"/codehealth/{repository.pk}/").content.decode()
    assert 'class="chart-svg"' in page and "Score of shop" in page
    finding = CodeFinding.objects.get()
    assert f'id="codehealth-finding-{finding.pk}"' in page and "Create task" in page
    response = alice_client.post(f"/codehealth/findings/{finding.pk}/task/", follow=True)
    task = Task.objects.get()
    assert task.source == "codehealth"
    assert f"Task #{task.pk} is open" in response.content.decode()
    assert f"Task #{task.pk}</a>" in alice_client.get(f"/codehealth/{repository.pk}/").content.decode()


def test_a_stranger_operators_repository_is_a_404(client, django_user_model, repository):
    dave = django_user_model.objects.create_user("dave", "d@example.com", "pw-dave-123456", is_staff=True)
    client.force_login(dave)
    assert client.get(f"/codehealth/{repository.pk}/").status_code == 404
    assert "shop" not in client.get("/codehealth/").content.decode()


def test_it_needs_a_signed_in_operator(client, bob, repository):
    assert client.get("/codehealth/").status_code in (302, 403)
    client.force_login(bob)
    assert client.get("/codehealth/").status_code in (302, 403)


def test_scan_now_queues_a_scan(alice_client, repository, monkeypatch, django_capture_on_commit_callbacks):
    queued = []
    monkeypatch.setattr(services, "async_task", lambda *a, **kw: queued.append(a))
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(f"/codehealth/{repository.pk}/scan/", follow=True)
    assert queued == [("codehealth.tasks.repository_scan", repository.pk)]
    assert "is queued" in response.content.decode()
    assert alice_client.get(f"/codehealth/{repository.pk}/scan/").status_code == 405


def test_the_overview_line_tells_the_worst_first(repository):
    area = AREAS["codehealth"]
    assert area.status().state == "idle" and "never been scanned" in area.status().text
    scan(repository, UNUSED)
    assert area.status().state == "ok" and "lowest score" in area.status().text
    scan(repository, UNUSED, VULN)
    status = area.status()
    assert status.state == "warn" and "1 vulnerable dependency" in status.text and status.attention == 1
    failed = Scan.objects.create(
        repository=repository, started_at=timezone.now(), status="failed", error="git clone failed: not found"
    )
    assert failed and area.status().state == "error" and "git clone failed" in area.status().text


def test_a_scan_cut_off_mid_way_is_not_a_calm_line(repository):
    scan(repository, UNUSED)
    Scan.objects.create(repository=repository, started_at=timezone.now() - timedelta(hours=2))
    status = AREAS["codehealth"].status()
    assert status.state == "warn" and "never finished" in status.text and "qcluster" in status.detail


def test_no_repository_is_an_honest_idle_line(db):
    status = AREAS["codehealth"].status()
    assert status.state == "idle" and "No repository" in status.text


def test_the_chat_tools_act_as_the_operator(alice, repository, django_user_model):
    scan(repository, UNUSED)
    with acting_as(alice):
        (repo,) = tools.codehealth_repositories()
        assert repo["name"] == "shop" and repo["open_findings"] == 1
        (finding,) = tools.codehealth_findings("shop")
        assert finding["name"] == "F401"
        assert tools.codehealth_findings("shop", kind="bogus")[0]["error"].startswith("kind must be")
        created = tools.codehealth_create_task(finding["finding_id"])
        assert created["created"] is True and Task.objects.count() == 1
    dave = django_user_model.objects.create_user("dave", "d@example.com", "pw-dave-123456", is_staff=True)
    with acting_as(dave):
        assert tools.codehealth_repositories() == []
        assert "error" in tools.codehealth_create_task(finding["finding_id"])
        assert "error" in tools.codehealth_report("shop") and "error" in tools.codehealth_scan("shop")


def test_the_chat_reads_the_weekly_report_and_queues_a_scan(alice, repository, monkeypatch):
    queued = []
    monkeypatch.setattr(services, "async_task", lambda *a, **kw: queued.append(a))
    scan(repository, UNUSED)
    with acting_as(alice):
        assert "no weekly report yet" in tools.codehealth_report("shop")["error"]
        services.report_build(repository)
        report = tools.codehealth_report("shop")
        assert report["score"] == repository.scans.first().score and report["vulnerable"] == 0
        assert tools.codehealth_scan("shop") == {"queued": True, "repository": "shop"}
    repository.refresh_from_db()
    assert repository.scan_requested_at is not None


def test_a_dismissed_finding_stops_counting_and_stays_dismissed_through_scans(alice_client, repository):
    scan(repository, UNUSED, VULN)
    finding = CodeFinding.objects.get(name="F401")
    before = repository.scans.first().score
    headers = {"HTTP_HX_REQUEST": "true"}
    page = f"codehealth-{repository.pk}"
    answer = alice_client.post(
        f"/codehealth/findings/{finding.pk}/dismiss/",
        {"reason": "re-exported for plugins", "page": page},
        **headers,
    ).content.decode()
    assert "F401 dismissed: it no longer counts." in answer and 'id="codehealth-findings"' in answer
    assert f'id="codehealth-finding-{finding.pk}"' not in answer  # gone from the open list
    assert repository.scans.first().score > before  # the score follows at once
    dismissed = alice_client.get(f"/codehealth/{repository.pk}/?kind=dismissed").content.decode()
    assert f'id="codehealth-finding-{finding.pk}"' in dismissed and "re-exported for plugins" in dismissed
    scan(repository, UNUSED, VULN)  # found again: still dismissed, still not counted
    finding.refresh_from_db()
    assert finding.dismissed_at is not None and repository.scans.first().findings_count == 1
    again = alice_client.post(f"/codehealth/findings/{finding.pk}/dismiss/", {"page": page}, **headers)
    assert "Refused: this finding is dismissed already" in again.content.decode()
    alice_client.post(f"/codehealth/findings/{finding.pk}/reopen/", {"page": page}, **headers)
    assert repository.scans.first().score == before


def test_a_not_run_audit_cannot_be_dismissed(alice_client, repository):
    scan(
        repository, Finding("dependency", "not_run", "", None, "vulnerabilities", 100, "no advisory snapshot")
    )
    finding = CodeFinding.objects.get()
    assert "Dismiss" not in alice_client.get(f"/codehealth/{repository.pk}/").content.decode()
    answer = alice_client.post(
        f"/codehealth/findings/{finding.pk}/dismiss/",
        {"page": f"codehealth-{repository.pk}"},
        HTTP_HX_REQUEST="true",
    ).content.decode()
    assert "Refused: an audit that did not run cannot be dismissed" in answer


def test_it_links_a_lint_finding_to_its_rules_documentation(alice_client, repository):
    url = "https://docs.astral.sh/ruff/rules/unused-import/"
    scan(repository, Finding("lint", "ruff", "app/x.py", 1, "F401", 100, "unused", extra={"url": url}))
    page = alice_client.get(f"/codehealth/{repository.pk}/").content.decode()
    assert f'<a href="{url}"' in page and ">F401</a>" in page


NOT_RUN = Finding("dependency", "not_run", "", None, "vulnerabilities", 100, "no advisory snapshot")


def test_the_overview_line_is_amber_or_red_below_the_thresholds_with_what_to_do(repository, settings):
    settings.CODEHEALTH_SCORE_WARN_BELOW, settings.CODEHEALTH_SCORE_ERROR_BELOW = 70, 40
    errors = [Finding("lint", "ruff", f"app/m{i}.py", 1, "F821", 100, "undefined name") for i in range(4)]
    done = scan(repository, *errors)  # 8 weighted points in under 1,000 lines: density 8
    status = AREAS["codehealth"].status()
    assert done.score < 40 and status.state == "error" and "below 40" in status.text
    assert "shop" in status.detail
    done = scan(repository, *errors[:1])  # density 2: 71
    assert AREAS["codehealth"].status().state == "ok"
    settings.CODEHEALTH_SCORE_WARN_BELOW = 80
    assert done.score < 80 and AREAS["codehealth"].status().state == "warn"


def test_an_audit_that_did_not_run_is_never_a_green_line(repository):
    scan(repository, NOT_RUN)
    status = AREAS["codehealth"].status()
    assert status.state == "warn" and "dependency audit did not run on shop" in status.text
    assert "CODEHEALTH_OSV_SNAPSHOT" in status.detail


def test_the_headline_says_a_first_scan_is_running(repository):
    Scan.objects.create(repository=repository, started_at=timezone.now())
    status = AREAS["codehealth"].status()
    assert "being scanned for the first time" in status.text and "never" not in status.text


def test_the_drill_down_pages_through_every_kind_and_shows_the_uncertain_apart(alice_client, repository):
    lint = [Finding("lint", "ruff", f"app/m{i:02}.py", 1, "E741", 100, "ambiguous name") for i in range(60)]
    dead = Finding("stale", "function", "app/old.py", 3, "old_helper", 90, "named nowhere")
    maybe = Finding("stale", "function", "app/hooks.py", 5, "audit_trail", 60, "(uncertain: its decorator)")
    scan(repository, *lint, dead, maybe)
    url = f"/codehealth/{repository.pk}/"
    first = alice_client.get(url).content.decode()
    assert "1–50 of 61" in first and "all open (61)" in first and "lint (60)" in first
    assert "stale (1)" in first and "uncertain (1)" in first and "old_helper" not in first
    second = alice_client.get(url + "?page=2").content.decode()
    assert "51–61 of 61" in second and "old_helper" in second  # "All open" reaches every kind
    assert "audit_trail" not in second  # the uncertain are apart
    assert f'data-page="codehealth-{repository.pk}-p2"' in second  # a live refresh keeps the page
    uncertain = alice_client.get(url + "?kind=uncertain").content.decode()
    assert "audit_trail" in uncertain and "1–1 of 1" in uncertain and "old_helper" not in uncertain
    assert alice_client.get(url + "?page=999").status_code == 200  # past the end: the last page


def test_an_operator_adds_a_github_repository_from_the_page_and_owns_it(alice_client, alice):
    index = alice_client.get("/codehealth/").content.decode()
    assert "Add repository" in index and 'name="local_path"' not in index  # not an admin
    response = alice_client.post("/codehealth/add/", {"github": "acme/shop"}, follow=True)
    repository = Repository.objects.get()
    assert (repository.owner, repository.github_owner, repository.github_name) == (alice, "acme", "shop")
    assert response.redirect_chain[-1][0] == f"/codehealth/{repository.pk}/"
    assert "press Scan now" in response.content.decode()
    refused = alice_client.post("/codehealth/add/", {"github": "not a name"}, follow=True).content.decode()
    assert "Refused: github must look like owner/name" in refused
    local = alice_client.post("/codehealth/add/", {"local_path": "/srv/x"}, follow=True).content.decode()
    assert "only an admin registers a local path" in local and Repository.objects.count() == 1


def test_an_admin_adds_a_local_path_under_the_roots_from_the_page(client, admin, tmp_path, settings):
    (tmp_path / "checkouts" / "shop").mkdir(parents=True)
    settings.CODEHEALTH_LOCAL_ROOTS = [str(tmp_path / "checkouts")]
    client.force_login(admin)
    assert 'name="local_path"' in client.get("/codehealth/").content.decode()
    client.post("/codehealth/add/", {"local_path": str(tmp_path / "checkouts" / "shop")})
    assert Repository.objects.get().owner == admin
    outside = client.post("/codehealth/add/", {"local_path": str(tmp_path)}, follow=True).content.decode()
    assert "CODEHEALTH_LOCAL_ROOTS" in outside and Repository.objects.count() == 1
