"""A hostile repository scanned through the real jobs path: the HQ's files stay byte-identical, nothing
it plants runs, the checkout is never written, and the scan ends within its deadline, in words."""

import hashlib
import json
import os
import shutil
import subprocess
import time
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from codehealth import autopr, services, tasks
from codehealth.analysis import checkout_analyse
from codehealth.findings import Finding
from codehealth.models import CodeFinding, Repository, Scan, ScanStatus
from codehealth.scan import scan_path
from tests.fakes.github import TOKEN

pytestmark = pytest.mark.django_db
HQ = Path(django_settings.BASE_DIR)
FIXTURES = Path(__file__).parent / "fixtures"
DEEP = "x = " + " + ".join(["1"] * 20_000) + "\n"


def hq_hashes() -> dict[str, str]:
    """Every source file of the HQ a hostile scan aims at (its own code and settings)."""
    files = [*HQ.glob("codehealth/**/*.py"), *HQ.glob("juggernaut/**/*.py"), HQ / "pyproject.toml"]
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.is_file()}


def tree_state(root: Path) -> dict[str, str]:
    """What a working tree holds, symlinks as their targets (never followed)."""
    state = {}
    for folder, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                state[rel] = "-> " + os.readlink(path)
            elif path.is_file():
                state[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                state[rel] = "dir" if path.is_dir() else "special"
    return state


def build_hostile(root: Path, marker: Path) -> None:
    """The repository of the attack: a ruff configuration that fixes in place and plants an import, a
    symlink to the HQ's own module and to /etc, symlink loops, a 20,000-term expression, and a
    package.json whose version string is a shell command."""
    (root / "app").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        "[tool.ruff]\nfix = true\nunsafe-fixes = true\n"
        '[tool.ruff.lint]\nselect = ["F", "I"]\n'
        '[tool.ruff.lint.isort]\nrequired-imports = ["from os import system as str"]\n'
    )
    (root / "app" / "views.py").write_text("import os\nimport sys\n\nprint(sys.argv)\n")
    (root / "app" / "deep.py").write_text(DEEP)
    target = HQ / "codehealth" / "dependencies.py"
    (root / "app" / "helpers.py").symlink_to(os.path.relpath(target, root / "app"))
    (root / "settings.py").symlink_to(HQ / "juggernaut" / "settings.py")
    (root / "etc").symlink_to("/etc")
    (root / "passwd.py").symlink_to("/etc/passwd")
    (root / "app" / "loop").symlink_to("..")
    (root / "ping").symlink_to("pong")
    (root / "pong").symlink_to("ping")
    (root / "package.json").write_text(
        json.dumps({"name": "evil", "dependencies": {"left-pad": f"1.0.0 $(touch {marker})"}})
    )


@pytest.fixture
def quiet_audit(settings):
    settings.CODEHEALTH_REGISTRY_LOOKUPS = False
    settings.CODEHEALTH_OSV_SNAPSHOT = ""


def test_it_scans_a_hostile_local_repository_without_writing_or_running_anything(
    alice, tmp_path, local_repository, quiet_audit
):
    marker = tmp_path / "pwned"
    root = tmp_path / "evil"
    build_hostile(root, marker)
    os.mkfifo(root / "app" / "pipe.py")  # a reader that opens it would wait forever
    repository = local_repository(alice, root, name="evil")
    before, tree_before = hq_hashes(), tree_state(root)

    assert tasks.repository_scan(repository.pk) == ScanStatus.DONE  # the jobs path the schedule calls

    scan = repository.scans.get()
    assert hq_hashes() == before  # byte-identical: ruff fixed nothing, planted nothing
    assert tree_state(root) == tree_before  # the local working tree is only read
    assert not marker.exists()
    assert scan.finished_at - scan.started_at < timedelta(
        seconds=django_settings.CODEHEALTH_SCAN_TIMEOUT_SECONDS
    )
    rows = {(r.category, r.path, r.name) for r in CodeFinding.objects.filter(repository=repository)}
    assert ("ruff", "app/views.py", "F401") in rows  # ruff did run, with the repository's rule selection
    assert ("skipped", "app/deep.py", "not_analysed") in rows  # the deep file is a note, not a crash
    paths = {path for _, path, _ in rows}
    assert not paths & {"app/helpers.py", "settings.py", "passwd.py"}  # symlinks out are not its files
    assert not any(p.startswith(("etc/", "app/loop/", "/")) or ".." in p for p in paths)
    assert not [r for r in rows if r[2] == "missing-required-import"]  # the planted import is not a rule


def test_the_analysers_work_on_a_copy_and_can_write_nothing_else(alice, tmp_path, local_repository):
    root = tmp_path / "shop"
    (root / "app").mkdir(parents=True)
    (root / "app" / "views.py").write_text("print(1)\n")
    repository = local_repository(alice, root, name="shop")
    before = tree_state(root)

    def analyse(path: Path) -> list[Finding]:
        outcomes = {
            "copy": str(path) != str(root) and (path / "app" / "views.py").read_text() == "print(1)\n"
        }
        (path / "app" / "views.py").write_text("changed in the copy\n")
        for name, target in (("checkout", root / "app" / "views.py"), ("hq", HQ / "codehealth" / "scan.py")):
            try:
                with open(target, "a"):
                    outcomes[name] = "written"
            except OSError as exc:
                outcomes[name] = exc.__class__.__name__
        return [Finding("lint", "probe", "app/views.py", 1, "probe", 100, json.dumps(outcomes))]

    scan = services.repository_scan(repository, analyse=analyse)
    assert scan.status == ScanStatus.DONE, scan.error
    outcomes = json.loads(CodeFinding.objects.get(repository=repository, category="probe").reason)
    assert outcomes["copy"] is True
    assert tree_state(root) == before
    if os.geteuid() == 0:  # the child became CODEHEALTH_SCAN_USER: the HQ's files are not its own
        assert outcomes["checkout"] == outcomes["hq"] == "PermissionError"


def _running(token: str) -> bool:
    for entry in Path("/proc").iterdir():
        try:
            if token in (entry / "cmdline").read_bytes().decode(errors="replace"):
                return True
        except OSError:
            continue
    return False


def test_an_overrunning_scan_is_killed_with_what_it_started_and_failed_in_words(
    alice, tmp_path, local_repository, settings
):
    settings.CODEHEALTH_SCAN_TIMEOUT_SECONDS = 1
    repository = local_repository(alice, tmp_path, name="slow")
    token = f"{os.getpid()}.{time.monotonic_ns() % 1000}"

    def analyse(path: Path) -> list[Finding]:
        subprocess.Popen(["sleep", f"300.{token}"])  # a grandchild: killed with its process group
        time.sleep(300)
        return []

    scan = services.repository_scan(repository, analyse=analyse)
    assert scan.status == ScanStatus.FAILED
    assert "did not finish within 1 s" in scan.error and "CODEHEALTH_SCAN_TIMEOUT_SECONDS" in scan.error
    assert not _running(f"300.{token}")


def test_an_analysis_past_the_memory_cap_fails_in_words(alice, tmp_path, local_repository, settings):
    settings.CODEHEALTH_SCAN_MEMORY_MB = 300  # room to run, not for 2 GB more
    repository = local_repository(alice, tmp_path, name="hungry")

    def analyse(path: Path) -> list[Finding]:
        hoard = bytearray(2 * 1024**3)
        return [Finding("lint", "probe", "", None, str(len(hoard)), 100, "allocated")]

    scan = services.repository_scan(repository, analyse=analyse)
    assert scan.status == ScanStatus.FAILED
    assert "ran out of memory" in scan.error and "CODEHEALTH_SCAN_MEMORY_MB" in scan.error


def test_a_crashing_analyser_is_a_failed_scan_never_a_running_one(alice, tmp_path, local_repository):
    repository = local_repository(alice, tmp_path, name="crash")

    def analyse(path: Path) -> list[Finding]:
        os.kill(os.getpid(), 9)
        return []

    scan = services.repository_scan(repository, analyse=analyse)
    assert scan.status == ScanStatus.FAILED and "the analysis stopped" in scan.error


def test_the_schedule_closes_scans_left_running_past_their_deadline(
    alice, tmp_path, local_repository, settings
):
    settings.CODEHEALTH_SCAN_TIMEOUT_SECONDS = 60
    repository = local_repository(alice, tmp_path, name="orphaned", scan_every_days=0)
    # the state a jobs process leaves when it is killed mid-scan
    orphan = Scan.objects.create(repository=repository, started_at=timezone.now() - timedelta(hours=2))
    young = Scan.objects.create(repository=repository, started_at=timezone.now() - timedelta(seconds=30))

    tasks.scans_due()

    orphan.refresh_from_db(), young.refresh_from_db()
    assert orphan.status == ScanStatus.FAILED and "closed after its deadline" in orphan.error
    assert orphan.finished_at is not None
    assert young.status == ScanStatus.RUNNING  # still within its deadline


# --- a hostile repository on GitHub: its CI output and an auto-PR -------------------------------------


HOSTILE_RUFF = (
    '[{"code": "F401", "filename": "../../../../etc/passwd", "location": {"row": 1, "column": 1},'
    ' "message": "m", "fix": {"applicability": "safe", "message": "x", "edits": []}},'
    ' {"code": "F401", "filename": "/etc/shadow", "location": {"row": 1, "column": 1}, "message": "m"},'
    ' {"code": "F401", "filename": "app/\\u0000x.py", "location": {"row": 1, "column": 1}, "message": "m"},'
    ' {"code": "E501", "filename": "/home/runner/work/shop/shop/app/views.py",'
    ' "location": {"row": 3, "column": 1}, "message": "long"}]'
)


@pytest.fixture
def hostile_on_github(alice, tmp_path, settings, github, quiet_audit):
    """The hostile repository as a git repository cloned over file://, its CI on the fake GitHub."""
    root = tmp_path / "remote" / "evil"
    marker = tmp_path / "pwned"
    build_hostile(root, marker)
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "evil"],
    ):
        subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)
    sha = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    (tmp_path / "remote" / "acme").mkdir()
    (tmp_path / "remote" / "acme" / "shop.git").symlink_to(root)
    settings.GITHUB_CLONE_URL = f"file://{tmp_path / 'remote'}"
    settings.GITHUB_API_URL, settings.GITHUB_TOKEN = github.url, TOKEN
    settings.CODEHEALTH_CLONE_DIR = str(tmp_path / "clones")
    github.runs = [
        {
            "id": 9,
            "name": "CI",
            "head_branch": "main",
            "head_sha": sha,
            "status": "completed",
            "conclusion": "failure",
        }
    ]
    github.add_artifact(
        9,
        90,
        "lint",
        {
            "ruff.json": HOSTILE_RUFF.encode(),
            "eslint.json": b'[{"filePath": "/etc/passwd", "messages": [{"ruleId": "x", "line": 1e999}]}]',
            "deep.json": b"[" * 5000 + b"]" * 5000,
            "nan.json": b'[{"code": "F401", "filename": "a.py", "location": {"row": NaN}}]',
            "tsc.txt": b"../../../etc/hosts(1,1): error TS1: no\n",
        },
    )
    return services.repository_create(alice, github="acme/shop"), marker


def test_it_refuses_every_ci_path_that_leaves_the_repository(hostile_on_github, github):
    repository, marker = hostile_on_github
    before = hq_hashes()

    assert tasks.repository_scan(repository.pk) == ScanStatus.DONE

    scan = repository.scans.get()
    assert hq_hashes() == before and not marker.exists()
    paths = set(CodeFinding.objects.filter(repository=repository).values_list("path", flat=True))
    assert "app/views.py" in paths  # the runner's absolute path, made relative
    assert not any(".." in p or p.startswith("/") or "\x00" in p or "passwd" in p for p in paths)
    assert scan.counts["refused"] >= 3  # the paths out of the repository, counted in the scan's notes


def test_an_auto_pr_never_asks_the_api_for_a_path_outside_the_repository(hostile_on_github, github):
    repository, _ = hostile_on_github
    scan = Scan.objects.create(repository=repository, started_at=timezone.now(), commit_sha="0" * 40)
    edits = [{"content": "", "location": {"row": 1, "column": 1}, "end_location": {"row": 2, "column": 1}}]
    # a row as an older scan could have left it, before paths were confined
    services.scan_record(
        scan, [Finding("lint", "ruff", "../../../../etc/passwd", 1, "F401", 100, "m", True, {"edits": edits})]
    )
    with pytest.raises(services.CodehealthError) as refused:
        autopr.pull_request_open(Repository.objects.get(pk=repository.pk))
    assert refused.value.code == "nothing_to_fix"
    assert not [p for _, p in github.requests if "passwd" in p or "/etc" in p]


def test_a_sandboxed_analysis_finds_what_an_in_process_one_finds(tmp_path):
    root = Path(shutil.copytree(FIXTURES / "djrepo", tmp_path / "djrepo"))
    (root / "fixtures").mkdir()
    (root / "fixtures" / "sample.py").write_text("import os\n")  # skipped by the stale analysis, not ruff
    analyse = partial(scan_path, kinds=["stale", "lint"])
    direct = {(f.kind, f.category, f.path, f.line, f.name) for f in analyse(root)}
    sandboxed, notes = checkout_analyse(root, analyse=analyse)
    assert {(f.kind, f.category, f.path, f.line, f.name) for f in sandboxed} == direct
    assert ("lint", "ruff", "fixtures/sample.py", 1, "F401") in direct and set(notes) == {"lines"}
