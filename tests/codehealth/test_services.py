"""Scans of a local fixture git repository into rows, tasks per finding, weekly reports, the clone."""

import json
import shutil
import socket
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from codehealth import analysis, checkout, services
from codehealth.errors import CodehealthError
from codehealth.findings import Finding
from codehealth.models import CodeFinding, ContractViolation, ReviewStatus, ScanStatus, StaleCodeItem
from codehealth.score import score_of
from juggernaut.engine.models import Task
from tests.conftest import CLOSED_URL
from tests.fakes.github import TOKEN
from tests.fakes.registries import FakeRegistries

pytestmark = pytest.mark.django_db


def git(path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="session")
def shop_template(tmp_path_factory):
    """A small git repository with an unused import planted in it, committed once per run."""
    repo = tmp_path_factory.mktemp("template") / "shop"
    (repo / "app").mkdir(parents=True)
    (repo / "app" / "views.py").write_text("import os\nimport sys\n\nprint(sys.argv)\n")
    (repo / "app" / "__init__.py").write_text("from app.views import sys\n")
    git(repo.parent, "init", "-q", "-b", "main", str(repo))
    git(repo, "-c", "user.email=a@b", "-c", "user.name=a", "add", ".")
    git(repo, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "init")
    return repo


@pytest.fixture
def checkout_dir(shop_template, tmp_path):
    """This test's own copy of the template repository, free to change."""
    return Path(shutil.copytree(shop_template, tmp_path / "shop", symlinks=True))


def analyser(*findings: Finding):
    """A stand-in analyser (run in the sandbox like the real one): returns ``findings``."""

    def analyse(path):
        return list(findings)

    return analyse


UNUSED_OS = Finding("lint", "ruff", "app/views.py", 1, "F401", 100, "`os` imported but unused", fixable=True)
STALE_FN = Finding("stale", "function", "app/views.py", 9, "old_helper", 95, "no reference anywhere")
UNSURE = Finding("stale", "method", "app/views.py", 12, "maybe", 40, "only a getattr with a variable")
CONTRACT = Finding(
    "contract",
    "missing_field",
    "web/api.ts",
    7,
    "GET /api/orders",
    90,
    "reads `total`",
    extra={"method": "GET", "endpoint": "/api/orders", "backend_path": "orders/api.py", "backend_line": 20},
)


@pytest.fixture
def repository(alice, checkout_dir, local_repository):
    return local_repository(alice, checkout_dir, name="shop")


def test_it_scans_a_local_checkout_into_rows(repository, checkout_dir):
    analyse = analyser(UNUSED_OS, STALE_FN, UNSURE, CONTRACT)
    scan = services.repository_scan(repository, analyse=analyse)
    assert scan.status == ScanStatus.DONE
    assert scan.commit_sha == git(checkout_dir, "rev-parse", "HEAD").strip()
    assert (scan.findings_count, scan.new_count, scan.fixed_count) == (4, 4, 0)
    # the unsure stale finding is a row but not a review item, and does not cost score
    assert list(StaleCodeItem.objects.values_list("name", flat=True)) == ["old_helper"]
    violation = ContractViolation.objects.get()
    assert (violation.endpoint, violation.frontend_line, violation.backend_path) == (
        "/api/orders",
        7,
        "orders/api.py",
    )
    assert scan.counts["lines"] > 0  # counted in the sandbox, what the density is measured against
    assert scan.score == score_of({"lint_error": 1, "stale": 1, "contract": 1}, scan.counts["lines"])
    assert scan.score < 100


def test_a_second_scan_tells_new_from_fixed(repository):
    first = services.repository_scan(repository, analyse=analyser(UNUSED_OS, STALE_FN))
    moved = Finding("stale", "function", "app/views.py", 30, "old_helper", 95, "no reference anywhere")
    second = services.repository_scan(repository, analyse=analyser(moved, CONTRACT))
    assert (second.new_count, second.fixed_count, second.findings_count) == (1, 1, 2)
    lint = CodeFinding.objects.get(name="F401")
    assert lint.fixed_scan == second and lint.first_scan == first
    helper = CodeFinding.objects.get(name="old_helper")
    assert helper.line == 30 and helper.first_scan == first and helper.is_open  # moved, same finding
    # the lint finding comes back: new again, open again
    third = services.repository_scan(repository, analyse=analyser(UNUSED_OS, moved))
    assert third.new_count == 1
    assert CodeFinding.objects.get(name="F401").is_open
    assert ContractViolation.objects.get().status == ReviewStatus.REMOVED


def test_a_clean_scan_scores_100(repository):
    assert services.repository_scan(repository, analyse=analyser()).score == 100


def test_a_failing_analyser_is_a_failed_scan_not_a_crash(repository):
    def broken(path):
        raise SyntaxError("bad file")

    scan = services.repository_scan(repository, analyse=broken)
    assert scan.status == ScanStatus.FAILED and "SyntaxError" in scan.error


def test_missing_analysers_are_a_failed_scan_that_says_so(repository, monkeypatch):
    def missing(path, **options):
        raise ModuleNotFoundError("No module named 'codehealth.scan'", name="codehealth.scan")

    monkeypatch.setattr(analysis, "default_analyse", missing)
    scan = services.repository_scan(repository)
    assert scan.status == ScanStatus.FAILED and "analysers are not installed (codehealth.scan)" in scan.error


def test_a_vanished_local_path_is_a_failed_scan(repository, checkout_dir):
    subprocess.run(["rm", "-rf", str(checkout_dir)], check=True)
    scan = services.repository_scan(repository, analyse=analyser())
    assert scan.status == ScanStatus.FAILED and "not a directory" in scan.error


def test_it_refuses_bad_repositories(admin, tmp_path):
    for kwargs, code in [
        ({}, "bad_source"),
        ({"github": "acme/shop", "local_path": str(tmp_path)}, "bad_source"),
        ({"github": "not a repo"}, "bad_github"),
        ({"local_path": "relative/dir"}, "bad_local_path"),
        ({"github": "acme/shop", "default_branch": "--upload-pack=x"}, "bad_branch"),
        ({"github": "acme/shop", "frontend_root": "../etc"}, "bad_root"),
    ]:
        with pytest.raises(CodehealthError) as info:
            services.repository_create(admin, **kwargs)
        assert info.value.code == code and info.value.status == 422


def test_it_clones_shallowly_with_the_token_only_in_a_header(
    alice, checkout_dir, settings, tmp_path, monkeypatch
):
    # A file:// remote stands in for GitHub: the same clone, offline.
    settings.GITHUB_CLONE_URL = f"file://{checkout_dir.parent}"
    settings.GITHUB_TOKEN = "ghp_secret_token_value"
    settings.CODEHEALTH_CLONE_DIR = str(tmp_path / "clones")
    repository = services.repository_create(alice, github="acme/shop")
    (checkout_dir.parent / "acme").mkdir()
    (checkout_dir.parent / "acme" / "shop.git").symlink_to(checkout_dir)  # what clone_url names
    seen = {}
    analyse_checkout = services.checkout_analyse

    def inspected(path, **options):  # the clone as the sandbox gets it
        seen["config"] = (path / ".git" / "config").read_text()
        seen["depth"] = git(path, "rev-list", "--count", "HEAD").strip()
        return analyse_checkout(path, **options)

    monkeypatch.setattr(services, "checkout_analyse", inspected)
    scan = services.repository_scan(repository, analyse=analyser(UNUSED_OS))
    assert scan.status == ScanStatus.DONE, scan.error
    assert seen["depth"] == "1"
    assert "ghp_secret" not in seen["config"] and "extraheader" not in seen["config"]
    assert not list((tmp_path / "clones").iterdir())  # the clone is gone afterwards


def test_a_failed_clone_never_shows_the_token(alice, settings, tmp_path):
    settings.GITHUB_CLONE_URL = f"file://{tmp_path}/nowhere"
    settings.GITHUB_TOKEN = "ghp_secret_token_value"
    settings.CODEHEALTH_CLONE_DIR = str(tmp_path / "clones")
    repository = services.repository_create(alice, github="acme/shop")
    scan = services.repository_scan(repository, analyse=analyser())
    assert scan.status == ScanStatus.FAILED and "git clone failed" in scan.error
    assert "ghp_secret" not in scan.error


def test_git_gets_the_token_through_its_environment_not_argv():
    env = checkout._git_env("ghp_abc")
    assert env["GIT_CONFIG_KEY_0"] == "http.extraheader"
    assert env["GIT_CONFIG_VALUE_0"].startswith("Authorization: Basic ")
    assert "ghp_abc" not in env["GIT_CONFIG_VALUE_0"]  # base64 of x-access-token:TOKEN


def test_create_task_queues_one_deduplicated_engine_task(repository):
    services.repository_scan(repository, analyse=analyser(UNUSED_OS))
    finding = CodeFinding.objects.get()
    task = services.finding_task_create(finding, actor="operator:alice")
    again = services.finding_task_create(finding, actor="operator:alice")
    assert task.pk == again.pk and Task.objects.count() == 1
    assert task.source == "codehealth" and task.dedupe_key == finding.dedupe_key
    assert task.payload["path"] == "app/views.py"
    finding.refresh_from_db()
    assert finding.task_id == task.pk


def test_a_fixed_finding_gets_no_task(repository):
    services.repository_scan(repository, analyse=analyser(UNUSED_OS))
    services.repository_scan(repository, analyse=analyser())
    with pytest.raises(CodehealthError) as info:
        services.finding_task_create(CodeFinding.objects.get(), actor="operator:alice")
    assert info.value.status == 409


def test_the_weekly_report_has_score_trend_new_fixed_and_audit_state(repository):
    last_week = datetime(2026, 11, 24, 9, tzinfo=UTC)
    services.repository_scan(repository, analyse=analyser(UNUSED_OS, STALE_FN), now=last_week)
    before = services.report_build(repository, now=last_week)
    assert before.previous_score is None and before.trend is None
    not_run = Finding("dependency", "not_run", "pyproject.toml", None, "osv", 100, "no advisory snapshot")
    vuln = Finding("dependency", "vulnerable", "pyproject.toml", 3, "django", 100, "GHSA-xxxx")
    now = last_week + timedelta(days=7)
    services.repository_scan(repository, analyse=analyser(STALE_FN, vuln, not_run), now=now)
    report = services.report_build(repository, now=now)
    assert report.week_start.isoformat() == "2026-11-30"
    assert report.previous_score == before.score and report.trend == report.score - before.score < 0
    assert (report.new_count, report.fixed_count, report.vulnerable_count) == (2, 1, 1)
    assert report.dependencies_audited is False  # "not run", never clean
    assert [f["name"] for f in report.data["fixed"]] == ["F401"]
    assert services.report_build(repository, now=now).pk == report.pk  # rebuilt, not duplicated


def test_repositories_due_follow_their_schedule(repository):
    now = datetime(2026, 12, 1, tzinfo=UTC)
    assert services.repositories_due(now=now) == [repository]
    services.repository_scan(repository, analyse=analyser(), now=now)
    assert services.repositories_due(now=now + timedelta(days=6)) == []
    assert services.repositories_due(now=now + timedelta(days=7)) == [repository]


OSV = [
    {
        "id": "PYSEC-2099-1",
        "summary": "header injection",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "requests"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.32.0"}]}],
            }
        ],
    }
]


@pytest.fixture
def manifests(checkout_dir, tmp_path, settings):
    """The fixture repository declares Python and npm dependencies; an OSV snapshot is configured."""
    (checkout_dir / "requirements.txt").write_text("requests==2.31.0\nDjango_Ninja==1.3.0\n")
    (checkout_dir / "package.json").write_text('{"dependencies": {"@acme/ui": "1.0.0", "react": "18.2.0"}}')
    git(checkout_dir, "-c", "user.email=a@b", "-c", "user.name=a", "add", ".")
    git(checkout_dir, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "deps")
    snapshot = tmp_path / "osv.json"
    snapshot.write_text(json.dumps(OSV))
    settings.CODEHEALTH_OSV_SNAPSHOT = str(snapshot)
    settings.CODEHEALTH_CLONE_DIR = str(tmp_path / "clones")
    settings.CODEHEALTH_REGISTRY_LOOKUPS = True
    return checkout_dir


def dependency_rows(scan) -> dict[tuple[str, str], str]:
    rows = CodeFinding.objects.filter(repository=scan.repository, kind="dependency")
    return {(r.category, r.name): r.reason for r in rows}


def test_a_scan_audits_dependencies_against_the_registries_and_the_osv_snapshot(
    repository, manifests, settings
):
    fake = FakeRegistries(
        pypi={"requests": "2.32.3", "django-ninja": "1.3.0"}, npm={"@acme/ui": "2.1.0", "react": "18.2.0"}
    )
    with fake.serve():
        settings.CODEHEALTH_PYPI_URL = f"{fake.url}/pypi"
        settings.CODEHEALTH_NPM_URL = fake.url
        scan = services.repository_scan(repository)
        again = services.repository_scan(repository)
    assert scan.status == ScanStatus.DONE, scan.error
    rows = dependency_rows(scan)
    assert set(rows) == {("vulnerable", "requests"), ("outdated", "requests"), ("outdated", "@acme/ui")}
    assert "PYSEC-2099-1" in rows[("vulnerable", "requests")]
    assert "2.1.0 (a new major version)" in rows[("outdated", "@acme/ui")]
    assert scan.counts["dependencies_audited"] is True
    # the second scan within the cache's lifetime asks the registries nothing new
    assert sorted(fake.hits) == sorted({h for h in fake.hits}) and len(fake.hits) == 4
    assert "/@acme%2Fui" in fake.hits
    assert again.counts["dependencies_audited"] is True


def test_a_dead_registry_and_no_snapshot_are_not_run_never_clean(repository, manifests, settings):
    settings.CODEHEALTH_OSV_SNAPSHOT = ""
    settings.CODEHEALTH_PYPI_URL = settings.CODEHEALTH_NPM_URL = f"http://127.0.0.1:{closed_port()}"
    scan = services.repository_scan(repository)
    rows = dependency_rows(scan)
    assert set(rows) == {("not_run", "outdated"), ("not_run", "vulnerabilities")}
    assert "no registry answered" in rows[("not_run", "outdated")]
    assert scan.counts["dependencies_audited"] is False


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


RUFF_JSON = json.dumps(
    [
        {
            "code": "F401",
            "filename": "/home/runner/work/shop/shop/app/models.py",
            "location": {"row": 2, "column": 1},
            "message": "`re` imported but unused",
            "fix": {"applicability": "safe", "message": "Remove unused import", "edits": []},
        }
    ]
)
ESLINT_JSON = json.dumps(
    [
        {
            "filePath": "/home/runner/work/shop/shop/web/page.tsx",
            "messages": [
                {
                    "ruleId": "no-unused-vars",
                    "line": 4,
                    "column": 7,
                    "severity": 2,
                    "message": "'x' is assigned a value but never used.",
                }
            ],
        }
    ]
)
TSC_TXT = b"web/api.ts(12,3): error TS2339: Property 'total' does not exist on type 'Order'.\n"


@pytest.fixture
def on_github(alice, checkout_dir, settings, tmp_path, github):
    """A GitHub repository cloned over file:// (offline) whose CI lives on the fake GitHub API."""
    settings.GITHUB_CLONE_URL = f"file://{checkout_dir.parent}"
    settings.GITHUB_API_URL, settings.GITHUB_TOKEN = github.url, TOKEN
    settings.CODEHEALTH_CLONE_DIR = str(tmp_path / "clones")
    (checkout_dir.parent / "acme").mkdir()
    (checkout_dir.parent / "acme" / "shop.git").symlink_to(checkout_dir)
    sha = git(checkout_dir, "rev-parse", "HEAD").strip()
    github.runs = [
        {
            "id": 8,
            "name": "CI",
            "head_branch": "main",
            "head_sha": "0" * 40,
            "status": "completed",
            "conclusion": "success",
        },
        {
            "id": 9,
            "name": "CI",
            "head_branch": "main",
            "head_sha": sha,
            "status": "completed",
            "conclusion": "failure",
        },
    ]
    return services.repository_create(alice, github="acme/shop"), sha


def test_a_scan_reads_the_ci_artifacts_of_its_commit(on_github, github):
    repository, _ = on_github
    github.add_artifact(8, 80, "lint", {"ruff.json": json.dumps([]).encode()})  # another commit's run
    github.add_artifact(
        9,
        90,
        "lint-results",
        {
            "ruff.json": RUFF_JSON.encode(),
            "eslint.json": ESLINT_JSON.encode(),
            "tsc.txt": TSC_TXT,
            "coverage.xml": b"<coverage/>",
        },
    )
    scan = services.repository_scan(repository, analyse=analyser())
    assert scan.status == ScanStatus.DONE, scan.error
    rows = {(r.category, r.path, r.line, r.name) for r in CodeFinding.objects.filter(repository=repository)}
    assert rows == {
        ("ruff", "app/models.py", 2, "F401"),
        ("eslint", "web/page.tsx", 4, "no-unused-vars"),
        ("tsc", "web/api.ts", 12, "TS2339"),
    }
    assert scan.counts["ci"] == "artifacts" and "CI run 9" in scan.counts["ci_note"]
    assert "/repos/acme/shop/actions/artifacts/80/zip" not in {p for _, p in github.requests}


def test_without_artifacts_annotations_stand_in_ten_per_check(on_github, github):
    repository, sha = on_github
    github.check_runs[sha] = [
        {
            "id": 77,
            "name": "mypy",
            "status": "completed",
            "conclusion": "failure",
            "output": {"annotations_count": 12},
        }
    ]
    github.annotations[77] = [
        {
            "path": "app/views.py",
            "start_line": n,
            "end_line": n,
            "annotation_level": "failure",
            "message": f"error {n}",
            "title": f"E{n}",
        }
        for n in range(1, 13)
    ]
    scan = services.repository_scan(repository, analyse=analyser())
    assert scan.counts["ci"] == "annotations"
    assert CodeFinding.objects.filter(repository=repository, category="mypy").count() == 10


def test_an_unreachable_ci_is_a_note_not_a_failed_scan(on_github, settings):
    repository, _ = on_github
    settings.GITHUB_API_URL = CLOSED_URL
    scan = services.repository_scan(repository, analyse=analyser(UNUSED_OS))
    assert scan.status == ScanStatus.DONE
    assert scan.counts["ci"] == "none" and scan.counts["ci_note"].startswith("CI results not read")
    assert CodeFinding.objects.filter(repository=repository).count() == 1


def test_a_local_checkout_shows_the_branch_it_has_out(alice, checkout_dir, local_repository):
    git(checkout_dir, "checkout", "-q", "-B", "master")
    repository = local_repository(alice, checkout_dir, name="shop")
    assert repository.default_branch == "master"  # not "main" because that is common
    git(checkout_dir, "checkout", "-q", "-b", "release/2.0")
    services.repository_scan(repository, analyse=analyser())
    repository.refresh_from_db()
    assert repository.default_branch == "release/2.0"
