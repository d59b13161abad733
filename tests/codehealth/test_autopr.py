"""Auto-PRs end to end against the fake GitHub: only mechanical fixes, every change listed, the cap."""

import pytest
from django.utils import timezone

from codehealth import autopr, services
from codehealth.errors import CodehealthError
from codehealth.findings import Finding
from codehealth.models import AutoPullRequest, PullStatus, Scan

pytestmark = pytest.mark.django_db

VIEWS = "import os\nimport sys\n\nprint(sys.argv)\n"
INIT = "import os\n"
APPS = "import shop.signals\nimport sys\n\nprint(sys.path)\n"


def remove_line(row: int) -> list[dict]:
    """Ruff's fix for an unused import on its own line: delete the whole line."""
    return [
        {"content": "", "location": {"row": row, "column": 1}, "end_location": {"row": row + 1, "column": 1}}
    ]


def unused(path: str, row: int, module: str, *, edits=True) -> Finding:
    return Finding(
        "lint",
        "ruff",
        path,
        row,
        "F401",
        100,
        f"`{module}` imported but unused",
        fixable=True,
        extra={"edits": remove_line(row)} if edits else {},
    )


@pytest.fixture
def repository(alice, github, gh, settings):
    github.commit_files(
        {"app/views.py": VIEWS.encode(), "app/__init__.py": INIT.encode(), "app/apps.py": APPS.encode()},
        message="app",
    )
    settings.CODEHEALTH_MAX_OPEN_PRS = 1
    repository = services.repository_create(alice, github="acme/shop")
    return repository


def scan_with(repository, github, *findings: Finding) -> Scan:
    head = github.refs["heads/main"]
    scan = Scan.objects.create(repository=repository, started_at=timezone.now(), commit_sha=head)
    return services.scan_record(scan, list(findings))


def test_it_opens_a_pull_request_with_only_mechanical_fixes(repository, github, gh):
    not_mechanical = Finding(
        "lint",
        "ruff",
        "app/views.py",
        4,
        "T201",
        100,
        "`print` found",
        fixable=True,
        extra={"edits": remove_line(4)},
    )
    scan_with(
        repository,
        github,
        unused("app/views.py", 1, "os"),
        unused("app/__init__.py", 1, "os"),  # a re-export: never
        unused("app/apps.py", 1, "shop.signals"),  # imported for its receivers: never
        unused("app/apps.py", 2, "sys", edits=False),  # no edits: nothing to apply
        not_mechanical,
    )
    row = autopr.pull_request_open(repository, client=gh)
    branch = row.branch
    assert github.file_at(branch, "app/views.py") == b"import sys\n\nprint(sys.argv)\n"
    assert github.file_at(branch, "app/__init__.py") == INIT.encode()
    assert github.file_at(branch, "app/apps.py") == APPS.encode()
    assert github.file_at("main", "app/views.py") == VIEWS.encode()  # the default branch is untouched
    (pull,) = github.pulls
    assert pull["head"]["ref"] == branch and pull["base"]["ref"] == "main"
    assert "| `app/views.py` | 1 | F401 | remove an unused import: `F401` |" in pull["body"]
    assert pull["body"].count("| `app/") == 1  # every change listed, nothing more
    assert [c["path"] for c in row.changes] == ["app/views.py"]
    # the sequence GitHub saw, in order
    writes = [p.rsplit("/", 1)[-1] for m, p in github.requests if m == "POST"]
    assert writes == ["blobs", "trees", "commits", "refs", "pulls"]


def test_it_refuses_more_than_the_open_cap(repository, github, gh):
    scan_with(repository, github, unused("app/views.py", 1, "os"))
    autopr.pull_request_open(repository, client=gh)
    with pytest.raises(CodehealthError) as info:
        autopr.pull_request_open(repository, client=gh)
    assert info.value.code == "too_many_prs" and info.value.status == 409
    assert len(github.pulls) == 1


def test_a_merged_pull_request_frees_its_place(repository, github, gh):
    scan_with(repository, github, unused("app/views.py", 1, "os"))
    first = autopr.pull_request_open(repository, client=gh)
    github.pulls[0].update(state="closed", merged_at="2026-12-01T10:00:00Z")
    second = autopr.pull_request_open(repository, client=gh)
    first.refresh_from_db()
    assert first.status == PullStatus.MERGED and second.number == 2


def test_nothing_mechanical_means_no_pull_request(repository, github, gh):
    scan_with(repository, github, unused("app/__init__.py", 1, "os"))
    with pytest.raises(CodehealthError) as info:
        autopr.pull_request_open(repository, client=gh)
    assert info.value.code == "nothing_to_fix"
    assert github.pulls == [] and AutoPullRequest.objects.count() == 0


def test_a_local_repository_gets_no_pull_request(alice, tmp_path, local_repository):
    repository = local_repository(alice, tmp_path)
    with pytest.raises(CodehealthError) as info:
        autopr.pull_request_open(repository)
    assert info.value.code == "not_on_github"


def test_github_refusing_is_a_clear_error(repository, github, gh):
    scan_with(repository, github, unused("app/views.py", 1, "os"))
    gh.token = "revoked"
    with pytest.raises(CodehealthError) as info:
        autopr.pull_request_open(repository, client=gh)
    assert info.value.code == "github_refused" and "Bad credentials" in info.value.message


def test_edits_apply_refuses_overlaps():
    edits = remove_line(1) + [
        {"content": "x", "location": {"row": 1, "column": 3}, "end_location": {"row": 1, "column": 4}}
    ]
    with pytest.raises(ValueError):
        autopr.edits_apply("import os\n", edits)


def reformat(path: str, old: str, new: str) -> Finding:
    end = {"row": len(old.splitlines(keepends=True)) + 1, "column": 1}
    return Finding(
        "lint",
        "ruff",
        path,
        1,
        "unformatted",
        100,
        "ruff format would reformat this file",
        fixable=True,
        extra={"edits": [{"content": new, "location": {"row": 1, "column": 1}, "end_location": end}]},
    )


def test_a_reformat_is_a_mechanical_fix_and_yields_to_precise_fixes_in_the_same_file(repository, github, gh):
    tidy_apps = "import shop.signals\nimport sys\n\nprint(sys.path)  # tidy\n"
    scan_with(
        repository,
        github,
        reformat("app/apps.py", APPS, tidy_apps),
        unused("app/views.py", 1, "os"),
        reformat("app/views.py", VIEWS, "import os\nimport sys\n\n\nprint(sys.argv)\n"),
    )
    row = autopr.pull_request_open(repository, client=gh)
    assert github.file_at(row.branch, "app/apps.py") == tidy_apps.encode()
    assert (
        github.file_at(row.branch, "app/views.py") == b"import sys\n\nprint(sys.argv)\n"
    )  # the F401 fix only
    assert sorted((c["path"], c["rule"]) for c in row.changes) == [
        ("app/apps.py", "unformatted"),
        ("app/views.py", "F401"),
    ]
    assert (
        "| `app/apps.py` | 1 | unformatted | reformat with the repository's own ruff format settings"
        in row.body
    )


def test_a_frontend_type_gets_the_optional_field_its_api_returns(repository, github, gh):
    types = "export interface Task {\n  id: number;\n}\n"
    github.commit_files({"web/lib/types.ts": types.encode()}, message="web")
    add = [
        {
            "content": "  result?: unknown;\n",
            "location": {"row": 3, "column": 1},
            "end_location": {"row": 3, "column": 1},
        }
    ]
    scan_with(
        repository,
        github,
        Finding(
            "contract",
            "type_missing_optional_field",
            "web/lib/types.ts",
            1,
            "Task.result",
            50,
            "'Task' has no 'result'",
            fixable=True,
            extra={"edits": add},
        ),
        Finding(
            "contract",
            "missing_response_field",
            "web/lib/types.ts",
            2,
            "Task.name",
            85,
            "not returned",
            fixable=True,
            extra={"edits": add},
        ),  # a real mismatch: a human's call, never a PR
    )
    row = autopr.pull_request_open(repository, client=gh)
    assert (
        github.file_at(row.branch, "web/lib/types.ts")
        == b"export interface Task {\n  id: number;\n  result?: unknown;\n}\n"
    )
    assert [c["rule"] for c in row.changes] == ["type_missing_optional_field"]
    assert "add an optional field the API returns to its frontend type: `Task.result`" in row.body


def test_its_own_checks_are_read_back_and_a_failing_pr_is_said(repository, github, gh, settings):
    from codehealth import tasks
    from juggernaut.hq import AREAS

    scan_with(repository, github, unused("app/views.py", 1, "os"))
    row = autopr.pull_request_open(repository, client=gh)
    assert row.checks == "pending"
    github.check_runs[row.commit_sha] = [
        {"id": 1, "name": "lint", "status": "completed", "conclusion": "success", "output": {}},
        {"id": 2, "name": "tests", "status": "in_progress", "conclusion": None, "output": {}},
    ]
    autopr.pull_requests_sync(repository, gh)
    row.refresh_from_db()
    assert row.checks == "pending"  # passing needs every check finished
    github.check_runs[row.commit_sha][1] |= {"status": "completed", "conclusion": "failure"}
    assert tasks.scans_due() == 0  # the hourly job reads open auto-PRs back too
    row.refresh_from_db()
    assert (row.checks, row.checks_detail) == ("failing", "tests")
    status = AREAS["codehealth"].status()
    assert status.state == "warn" and f"Auto-PR #{row.number} of acme/shop fails" in status.text
    assert "close the PR" in status.detail
    github.check_runs[row.commit_sha][1]["conclusion"] = "success"
    autopr.pull_requests_sync(repository, gh)
    row.refresh_from_db()
    assert row.checks == "passing" and AREAS["codehealth"].status().state != "warn"


def test_a_fix_that_would_break_the_module_is_dropped_with_its_reason_and_the_rest_go_out(
    repository, github, gh
):
    # ruff says `json` is unused, but the module names it in a string it resolves at run time
    module = "import json\nimport re\n\nloader = __import__('json')\nprint(re.sub)\n"
    broken = "def f():\n    return 1\n"
    github.commit_files(
        {"app/views.py": VIEWS.encode(), "app/loaders.py": module.encode(), "app/tiny.py": broken.encode()},
        message="more",
    )
    bad_syntax = Finding(  # an edit that would leave the module unparsable
        "lint",
        "ruff",
        "app/tiny.py",
        1,
        "W291",
        100,
        "Trailing whitespace",
        fixable=True,
        extra={
            "edits": [
                {"content": "", "location": {"row": 1, "column": 1}, "end_location": {"row": 1, "column": 9}}
            ]
        },
    )
    scan_with(
        repository,
        github,
        unused("app/loaders.py", 1, "json"),
        unused("app/views.py", 1, "os"),
        bad_syntax,
    )
    row = autopr.pull_request_open(repository, client=gh)
    assert github.file_at(row.branch, "app/loaders.py") == module.encode()
    assert github.file_at(row.branch, "app/views.py") == b"import sys\n\nprint(sys.argv)\n"
    assert github.file_at(row.branch, "app/tiny.py") == broken.encode()
    assert [(c["path"], c["line"]) for c in row.changes] == [("app/views.py", 1)]
    reasons = {d["path"]: d["reason"] for d in row.dropped}
    assert "'json' would still be used" in reasons["app/loaders.py"]
    assert "no longer compile" in reasons["app/tiny.py"]
    (pull,) = github.pulls
    assert "Left out" in pull["body"] and "'json' would still be used" in pull["body"]


def test_a_removal_ruffs_f_rules_object_to_is_dropped(tmp_path):
    from codehealth.fixproof import unproven

    original = "from os import path\nfrom os import path\n\nprint(path)\n"
    # removing the second import leaves the first; removing the first and keeping the second is
    # fine too; removing both leaves an undefined name, which pyflakes finds
    assert unproven("m.py", original, "from os import path\n\nprint(path)\n", set()) == ""
    assert "F821" in unproven("m.py", original, "\nprint(path)\n", set())
