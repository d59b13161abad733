"""Code health's workflows: register a repository, scan it into rows, queue a task for a finding,
build the weekly report. Auto-PRs are ``codehealth.autopr``.

A scan hands the checkout to an analyser, ``analyse(path) -> list[Finding]``, by default
``codehealth.scan.scan_path``; callers (and tests) may pass any other. Either runs in the sandbox
(``codehealth.analysis``, ``codehealth.sandbox``).
"""

import logging
import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from codehealth import sources
from codehealth.analysis import Analyser, checkout_analyse, confine
from codehealth.apps import TASK_SOURCE
from codehealth.checkout import head_branch, local_path_check, repository_checkout
from codehealth.ci import ci_findings
from codehealth.errors import CodehealthError
from codehealth.findings import TYPE_DRIFT, Finding
from codehealth.models import (
    AutoPullRequest,
    CodeFinding,
    CodeHealthReport,
    ContractViolation,
    PullStatus,
    Repository,
    ReviewStatus,
    Scan,
    ScanStatus,
    StaleCodeItem,
    fingerprint_of,
)
from codehealth.score import bucket, score_of
from juggernaut.engine import services as engine
from juggernaut.engine.models import Task
from juggernaut.events import publish

TOPIC = "codehealth"
TASK_KIND = "codehealth.fix"
GITHUB_REPO = re.compile(r"^([A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))/([A-Za-z0-9._-]{1,100})$")
log = logging.getLogger(__name__)


# --- repositories --------------------------------------------------------------------------------


def _root(value: str, field: str) -> str:
    value = (value or "").strip().strip("/")
    if value and (value.startswith(".") or ".." in PurePosixPath(value).parts or "\x00" in value):
        raise CodehealthError("bad_root", f"{field} must be a path inside the repository", status=422)
    return value[:300]


def repository_create(
    owner,
    *,
    github: str = "",
    local_path: str = "",
    name: str = "",
    default_branch: str = "",
    frontend_root: str = "",
    backend_root: str = "",
    scan_every_days: int = 7,
    schema_url: str = "",
) -> Repository:
    """Register a repository: ``github`` as ``owner/name``, or an absolute ``local_path`` to a directory
    (an admin's decision: ``checkout.local_path_check``); ``schema_url``: where a running instance serves
    its OpenAPI document, when none is exported. Names are unique per owner; a local path is registered
    once, by anyone."""
    github, local_path = (github or "").strip(), (local_path or "").strip()
    if bool(github) == bool(local_path):
        raise CodehealthError("bad_source", "give either github (owner/name) or local_path", status=422)
    gh_owner = gh_name = ""
    if github:
        match = GITHUB_REPO.match(github)
        if not match:
            raise CodehealthError("bad_github", "github must look like owner/name", status=422)
        gh_owner, gh_name = match.groups()
    else:
        local_path = local_path_check(owner, local_path)
    # a local checkout's branch is the one it has out, unless one is named
    branch = (default_branch or (local_path and head_branch(Path(local_path))) or "main").strip()
    if not re.fullmatch(r"[A-Za-z0-9._/-]{1,200}", branch) or ".." in branch or branch.startswith("-"):
        raise CodehealthError("bad_branch", "default_branch is not a valid branch name", status=422)
    if not 0 <= scan_every_days <= 365:
        raise CodehealthError(
            "bad_schedule", "scan_every_days must be 0 (only when asked) to 365", status=422
        )
    schema_url = (schema_url or "").strip()
    if schema_url and (
        len(schema_url) > 500
        or "\x00" in schema_url
        or not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", schema_url)
    ):
        raise CodehealthError("bad_schema_url", "schema_url must be an http(s) URL", status=422)
    name = (name or github or Path(local_path).name).strip()[:200]
    # Only the caller's own names are looked at: whether another operator uses a name is not told.
    if Repository.objects.filter(owner=owner, name=name).exists():
        raise CodehealthError("exists", f"you have a repository named {name!r} already", status=409)
    if local_path and Repository.objects.filter(local_path=local_path).exists():
        raise CodehealthError("path_registered", "this local path is registered already", status=409)
    roots = {
        "frontend_root": _root(frontend_root, "frontend_root"),
        "backend_root": _root(backend_root, "backend_root"),
    }
    try:
        with transaction.atomic():
            repository = Repository.objects.create(
                name=name,
                github_owner=gh_owner,
                github_name=gh_name,
                local_path=local_path,
                default_branch=branch,
                scan_every_days=scan_every_days,
                owner=owner,
                schema_url=schema_url,
                **roots,
            )
    except IntegrityError as exc:  # the same registration, at the same moment
        raise CodehealthError("exists", "this repository is registered already", status=409) from exc
    publish(TOPIC, "repository_added", {"repository_id": repository.pk})
    return repository


# --- scans ---------------------------------------------------------------------------------------


def scan_request(repository: Repository) -> None:
    """Queue a scan on the jobs process (a clone can take minutes: never in a web request). The
    repository remembers when, so a scan that never starts (no jobs process) is seen and said."""
    Repository.objects.filter(pk=repository.pk).update(scan_requested_at=timezone.now())
    transaction.on_commit(
        lambda: async_task(
            "codehealth.tasks.repository_scan", repository.pk, task_name=f"codehealth-scan-{repository.pk}"
        )
    )
    publish(TOPIC, "scan_queued", {"repository_id": repository.pk})


def repository_scan(
    repository: Repository, *, analyse: Analyser | None = None, now: datetime | None = None
) -> Scan:
    """Check the repository out, run the analyser in the sandbox (``codehealth.analysis``) within
    ``CODEHEALTH_SCAN_TIMEOUT_SECONDS``, and record what it found. A scan that fails for any reason
    is recorded failed, with the reason in words."""
    now = now or timezone.now()
    scan = Scan.objects.create(repository=repository, started_at=now)
    Repository.objects.filter(pk=repository.pk).update(scan_requested_at=None)
    publish(TOPIC, "scan_started", {"repository_id": repository.pk, "scan_id": scan.pk})
    deadline = time.monotonic() + settings.CODEHEALTH_SCAN_TIMEOUT_SECONDS
    beat = partial(scan_beat, scan)
    try:
        schema, schema_problem = (
            sources.schema_fetch(repository.schema_url) if repository.schema_url else (None, "")
        )
        beat()
        with repository_checkout(repository, beat=beat) as (path, sha):
            if repository.local_path:  # a local checkout is scanned as it is: say the branch it has out
                branch = head_branch(path)
                if branch and branch != repository.default_branch:
                    repository.default_branch = branch
                    Repository.objects.filter(pk=repository.pk).update(default_branch=branch)
            findings, notes = checkout_analyse(
                path,
                analyse=analyse,
                schema=schema,
                skip=("contract",) if schema_problem else (),
                deadline=deadline,
                beat=beat,
            )
        if schema_problem:
            findings.append(
                Finding(
                    kind="contract",
                    category="not_run",
                    path="",
                    line=None,
                    name="openapi",
                    confidence=100,
                    reason=schema_problem,
                )
            )
        ci = None
        if repository.on_github:
            beat()
            ci = ci_findings(
                repository.github_owner, repository.github_name, sha=sha, branch=repository.default_branch
            )
            ci_found, refused = confine(ci.findings)
            findings += ci_found  # after the local ones: the same finding keeps the checkout's fix edits
            if refused + ci.refused:
                notes["refused"] = notes.get("refused", 0) + refused + ci.refused
    except CodehealthError as exc:
        return _scan_failed(scan, exc.message)
    except Exception as exc:  # a scan that dies for any reason ends failed, in words
        log.exception("scan %s of %s failed", scan.pk, repository.name)
        return _scan_failed(scan, f"the scan failed: {exc.__class__.__name__}")
    scan.commit_sha = sha
    notes |= {"ci": ci.source, "ci_note": ci.note} if ci else {}
    return scan_record(scan, findings, now=now, notes=notes)


TAKEN_OVER = "the scan stopped sending heartbeats"


def scan_beat(scan: Scan) -> None:
    """The running scan's heartbeat: it is alive. Raises ``CodehealthError`` when the scan is no longer
    running (the sweep took it over), so the work of a scan given up for dead stops."""
    beat = timezone.now()
    if not Scan.objects.filter(pk=scan.pk, status=ScanStatus.RUNNING).update(heartbeat_at=beat):
        raise CodehealthError("taken_over", "the scan was closed while it ran and stopped", status=409)
    scan.heartbeat_at = beat  # the row is saved whole when the scan is recorded


def scans_take_over(*, now: datetime | None = None) -> list[Scan]:
    """Close, as failed, running scans whose heartbeat is older than ``CODEHEALTH_SCAN_LEASE_SECONDS``:
    their jobs process died mid-scan. Each is closed once, by one conditional update on the heartbeat
    it judged (a scan that beat since keeps running), and its repository is scanned again, unless the
    scan before was taken over too (a repository whose scan kills its process is not tried forever).
    Returns the scans closed."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.CODEHEALTH_SCAN_LEASE_SECONDS)
    closed = []
    for scan in Scan.objects.filter(status=ScanStatus.RUNNING, heartbeat_at__lt=cutoff).select_related(
        "repository"
    ):
        age = int((now - scan.heartbeat_at).total_seconds())
        message = f"{TAKEN_OVER} {age} s ago (its jobs process died or was killed); taken over"
        with transaction.atomic():
            if not Scan.objects.filter(
                pk=scan.pk, status=ScanStatus.RUNNING, heartbeat_at=scan.heartbeat_at
            ).update(status=ScanStatus.FAILED, error=message, finished_at=now):
                continue
            publish(TOPIC, "scan_failed", {"repository_id": scan.repository_id, "scan_id": scan.pk})
        closed.append(scan)
        before = Scan.objects.filter(repository=scan.repository_id, pk__lt=scan.pk).order_by("-pk").first()
        if before is None or not before.error.startswith(TAKEN_OVER):
            scan_request(scan.repository)
    return closed


def scan_deadline_passed(*, now: datetime | None = None) -> datetime:
    """The start before which a scan still ``running`` is past its deadline: the clone's time limit,
    the analysis's, and a minute to record what it found."""
    seconds = settings.CODEHEALTH_CLONE_TIMEOUT_SECONDS + settings.CODEHEALTH_SCAN_TIMEOUT_SECONDS + 60
    return (now or timezone.now()) - timedelta(seconds=seconds)


def scans_orphans_close(*, now: datetime | None = None) -> int:
    """Close every scan still ``running`` past its deadline (its jobs process was killed or restarted
    mid-scan, so nothing else ever will) as failed, saying so; each is closed once, by one caller.
    Returns how many were closed."""
    closed = 0
    started_before = scan_deadline_passed(now=now)
    for scan in Scan.objects.filter(status=ScanStatus.RUNNING, started_at__lt=started_before):
        message = (
            "the scan stopped without finishing (its jobs process ended mid-scan) and was closed "
            "after its deadline"
        )
        with transaction.atomic():
            # one conditional update: a sweep and a late finish never both win
            if not Scan.objects.filter(pk=scan.pk, status=ScanStatus.RUNNING).update(
                status=ScanStatus.FAILED, error=message, finished_at=now or timezone.now()
            ):
                continue
            publish(TOPIC, "scan_failed", {"repository_id": scan.repository_id, "scan_id": scan.pk})
        closed += 1
    return closed


def _scan_failed(scan: Scan, message: str) -> Scan:
    with transaction.atomic():
        # a scan the sweep took over keeps the sweep's words
        if not Scan.objects.filter(pk=scan.pk, status=ScanStatus.RUNNING).update(
            status=ScanStatus.FAILED, error=message[:500], finished_at=timezone.now()
        ):
            scan.refresh_from_db()
            return scan
        publish(
            TOPIC,
            "scan_failed",
            {"repository_id": scan.repository_id, "scan_id": scan.pk},  # the why is on the owner's page
        )
    scan.refresh_from_db()
    return scan


@transaction.atomic
def scan_record(
    scan: Scan, findings: list[Finding], *, now: datetime | None = None, notes: dict | None = None
) -> Scan:
    """Turn a scan's findings into rows: new ones created (or reopened), seen ones updated, open ones
    not seen this time marked fixed; stale items and contract violations follow their findings.
    ``notes`` (where CI results came from) are kept in the scan's counts. A scan no longer running
    (taken over by the sweep while its findings came in) stays as the sweep left it."""
    if not Scan.objects.select_for_update().filter(pk=scan.pk, status=ScanStatus.RUNNING).exists():
        scan.refresh_from_db()
        return scan
    now = now or timezone.now()
    repository = scan.repository
    known = {row.fingerprint: row for row in CodeFinding.objects.filter(repository=repository)}
    seen: dict[str, Finding] = {}
    occurrences: Counter = Counter()
    for finding in sorted(findings, key=lambda f: (f.path, f.line or 0)):
        identity = finding.name
        if finding.kind == "lint":  # a rule broken twice in a file is two findings: its message and
            # the how-manieth time in the file tell them apart (lines shift; these do not)
            key = (finding.category, finding.path, finding.name, finding.reason)
            identity = f"{finding.name}\x00{finding.reason}\x00{occurrences[key]}"
            occurrences[key] += 1
        seen.setdefault(fingerprint_of(finding.kind, finding.category, finding.path, identity), finding)
    created, updated, new = [], [], 0
    for fp, f in seen.items():
        values = {
            "line": f.line,
            "confidence": max(0, min(100, int(f.confidence))),
            "reason": f.reason[:5000],
            "fixable": f.fixable,
            "extra": f.extra or {},
        }
        row = known.get(fp)
        if row is None:
            created.append(
                CodeFinding(
                    repository=repository,
                    fingerprint=fp,
                    kind=f.kind,
                    category=f.category[:40],
                    path=f.path[:1000],
                    name=f.name[:300],
                    first_scan=scan,
                    last_scan=scan,
                    **values,
                )
            )
            new += 1
            continue
        if row.fixed_scan_id is not None:  # back again: new in this scan
            row.fixed_scan, row.first_scan = None, scan
            new += 1
        for key, value in values.items():
            setattr(row, key, value)
        row.last_scan = scan
        updated.append(row)
    CodeFinding.objects.bulk_create(created, batch_size=500)
    CodeFinding.objects.bulk_update(
        updated,
        ["line", "confidence", "reason", "fixable", "extra", "last_scan", "fixed_scan", "first_scan"],
        batch_size=500,
    )
    gone = [row.pk for fp, row in known.items() if fp not in seen and row.fixed_scan_id is None]
    CodeFinding.objects.filter(pk__in=gone).update(fixed_scan=scan)
    _review_rows_sync(repository)
    scan.status, scan.finished_at = ScanStatus.DONE, timezone.now()
    scan.new_count, scan.fixed_count = new, len(gone)
    scan_totals(scan, notes=notes or {})
    scan.save()
    Repository.objects.filter(pk=repository.pk).update(last_scanned_at=now)
    publish(
        TOPIC,
        "scan_finished",
        {
            "repository_id": repository.pk,
            "scan_id": scan.pk,
            "score": scan.score,
            "new": new,
            "fixed": len(gone),
        },
    )
    return scan


NOTE_KEYS = (
    "ci",
    "ci_note",
    "osv",
    "refused",
    "lines",
)  # what a scan's counts say of its inputs, kept through a recount


def scan_totals(scan: Scan, *, notes: dict | None = None) -> None:
    """The scan's score, open count and counts from its repository's open findings as they are now
    (after the scan, or when an operator dismisses or reopens one); not saved."""
    open_rows = list(CodeFinding.objects.open().filter(repository_id=scan.repository_id))
    counts = Counter(b for b in map(bucket, open_rows) if b)
    if notes is None:
        notes = {k: v for k, v in (scan.counts or {}).items() if k in NOTE_KEYS}
    lines = notes.get("lines") if isinstance(notes.get("lines"), int) else None
    scan.score, scan.findings_count = score_of(counts, lines), len(open_rows)
    scan.counts = {
        **dict(Counter(row.kind for row in open_rows)),
        **{f"score_{k}": v for k, v in counts.items()},
        "dependencies_audited": not any(
            r.kind == "dependency" and r.category == "not_run" for r in open_rows
        ),
        **notes,
    }


@transaction.atomic
def finding_review(finding: CodeFinding, *, actor: str, dismiss: bool, reason: str = "") -> CodeFinding:
    """Dismiss a finding (a false alarm, or intended: it stays dismissed through later scans and counts
    against nothing) or reopen a dismissed one; the latest scan's score follows at once."""
    if finding.fixed_scan_id is not None:
        raise CodehealthError("fixed", "this finding was fixed; there is nothing to review", status=409)
    if dismiss and finding.category == "not_run":
        raise CodehealthError(
            "not_run", "an audit that did not run cannot be dismissed: make it run", status=409
        )
    if dismiss == (finding.dismissed_at is not None):
        state = "dismissed" if dismiss else "open"
        raise CodehealthError(f"already_{state}", f"this finding is {state} already", status=409)
    finding.dismissed_at = timezone.now() if dismiss else None
    finding.dismissed_by, finding.dismiss_reason = (
        (actor[:150], reason.strip()[:300]) if dismiss else ("", "")
    )
    finding.save(update_fields=["dismissed_at", "dismissed_by", "dismiss_reason"])
    status = ReviewStatus.DISMISSED if dismiss else ReviewStatus.OPEN
    for rows in (StaleCodeItem.objects, ContractViolation.objects):
        rows.filter(finding=finding).exclude(status=ReviewStatus.REMOVED).update(status=status)
    scan = finding.repository.scans.filter(status=ScanStatus.DONE).first()
    if scan is not None:
        scan_totals(scan)
        scan.save(update_fields=["score", "findings_count", "counts"])
    publish(
        TOPIC,
        "finding_dismissed" if dismiss else "finding_reopened",
        {"repository_id": finding.repository_id, "finding_id": finding.pk},
    )
    return finding


def _review_rows_sync(repository: Repository) -> None:
    """Stale items for confident open stale findings, contract violations for open contract findings;
    those whose finding was fixed are marked removed."""
    threshold = settings.CODEHEALTH_STALE_MIN_CONFIDENCE
    rows = CodeFinding.objects.open().filter(repository=repository)
    has_item = set(StaleCodeItem.objects.filter(repository=repository).values_list("finding_id", flat=True))
    StaleCodeItem.objects.bulk_create(
        [
            StaleCodeItem(
                finding=f,
                repository=repository,
                category=f.category[:20],
                path=f.path,
                line=f.line,
                name=f.name,
                confidence=f.confidence,
                reason=f.reason,
            )
            for f in rows.filter(kind="stale", confidence__gte=threshold)
            if f.pk not in has_item
        ]
    )
    has_violation = set(
        ContractViolation.objects.filter(repository=repository).values_list("finding_id", flat=True)
    )
    violations = []
    for f in rows.filter(kind="contract").exclude(category=TYPE_DRIFT):
        if f.pk in has_violation:
            continue
        x = f.extra or {}
        violations.append(
            ContractViolation(
                finding=f,
                repository=repository,
                category=f.category,
                method=str(x.get("method") or "")[:10],
                endpoint=str(x.get("endpoint") or f.name)[:500],
                frontend_path=str(x.get("frontend_path") or f.path)[:1000],
                frontend_line=x.get("frontend_line") or f.line,
                backend_path=str(x.get("backend_path") or "")[:1000],
                backend_line=x.get("backend_line"),
                message=f.reason,
            )
        )
    ContractViolation.objects.bulk_create(violations)
    fixed = Q(finding__fixed_scan__isnull=False)
    StaleCodeItem.objects.filter(fixed, repository=repository).exclude(status=ReviewStatus.REMOVED).update(
        status=ReviewStatus.REMOVED
    )
    ContractViolation.objects.filter(fixed, repository=repository).exclude(
        status=ReviewStatus.REMOVED
    ).update(status=ReviewStatus.REMOVED)
    # a finding back again reopens its review row
    reopened = Q(finding__fixed_scan__isnull=True, status=ReviewStatus.REMOVED)
    StaleCodeItem.objects.filter(reopened, repository=repository).update(status=ReviewStatus.OPEN)
    ContractViolation.objects.filter(reopened, repository=repository).update(status=ReviewStatus.OPEN)


def repositories_due(*, now: datetime | None = None) -> list[Repository]:
    """Repositories whose schedule says a scan is due."""
    now = now or timezone.now()
    return [
        r
        for r in Repository.objects.filter(scan_every_days__gt=0)
        if r.last_scanned_at is None or now - r.last_scanned_at >= timedelta(days=r.scan_every_days)
    ]


# --- tasks ---------------------------------------------------------------------------------------


def finding_task_create(finding: CodeFinding, *, actor: str) -> Task:
    """Queue (or find) the one open engine task for a finding and link it back."""
    if finding.dismissed_at is not None:
        raise CodehealthError("dismissed", "this finding was dismissed; reopen it first", status=409)
    if not finding.is_open:
        raise CodehealthError("fixed", "this finding was fixed; there is nothing to do", status=409)
    where = f"{finding.path}:{finding.line}" if finding.line else finding.path
    task = engine.task_create(
        f"Code health: {finding.kind} {finding.category} {finding.name[:80]} in {where[:80]}",
        kind=TASK_KIND,
        payload={
            "repository": finding.repository.name,
            "finding_id": finding.pk,
            "kind": finding.kind,
            "category": finding.category,
            "path": finding.path,
            "line": finding.line,
            "name": finding.name,
            "reason": finding.reason[:2000],
            "fixable": finding.fixable,
        },
        source=TASK_SOURCE,
        dedupe_key=finding.dedupe_key,
        origin={"type": "codehealth_finding", "id": finding.pk},
        actor=actor,
    )
    if finding.task_id != task.pk:
        CodeFinding.objects.filter(pk=finding.pk).update(task=task)
        finding.task_id = task.pk
    return task


# --- reports -------------------------------------------------------------------------------------


def week_of(moment: datetime) -> datetime:
    """The Monday 00:00 UTC that starts ``moment``'s week."""
    start = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return start - timedelta(days=start.weekday())


def report_build(repository: Repository, *, now: datetime | None = None) -> CodeHealthReport:
    """The repository's report for the week of ``now`` (rebuilt when it exists)."""
    now = now or timezone.now()
    start = week_of(now)
    end = start + timedelta(days=7)
    scan = repository.scans.filter(status=ScanStatus.DONE, started_at__lt=end).first()
    previous = repository.reports.filter(week_start__lt=start.date()).first()
    findings = CodeFinding.objects.filter(repository=repository)
    new = findings.filter(
        first_scan__started_at__gte=start, first_scan__started_at__lt=end, fixed_scan__isnull=True
    )
    fixed = findings.filter(fixed_scan__started_at__gte=start, fixed_scan__started_at__lt=end)
    open_rows = list(findings.open())
    buckets = Counter(b for b in map(bucket, open_rows) if b)
    pulls = AutoPullRequest.objects.filter(repository=repository, created_at__gte=start, created_at__lt=end)
    merged = AutoPullRequest.objects.filter(
        repository=repository,
        status=PullStatus.MERGED,
        created_at__lt=end,
        created_at__gte=start - timedelta(days=28),
    )
    audited = bool(scan and scan.counts.get("dependencies_audited"))
    data = {
        "new": [_brief(f) for f in new[:50]],
        "fixed": [_brief(f) for f in fixed[:50]],
        "stale": [
            _brief(i.finding)
            for i in repository.stale_items.filter(status=ReviewStatus.OPEN).select_related("finding")[:50]
        ],
        "contract": [
            _brief(v.finding)
            for v in repository.contract_violations.filter(status=ReviewStatus.OPEN).select_related(
                "finding"
            )[:50]
        ],
        "pull_requests": [{"number": p.number, "url": p.url, "status": p.status} for p in pulls],
    }
    report, _ = CodeHealthReport.objects.update_or_create(
        repository=repository,
        week_start=start.date(),
        defaults={
            "scan": scan,
            "score": scan.score if scan else None,
            "previous_score": previous.score if previous else None,
            "new_count": new.count(),
            "fixed_count": fixed.count(),
            "stale_count": repository.stale_items.filter(status=ReviewStatus.OPEN).count(),
            "contract_count": repository.contract_violations.filter(status=ReviewStatus.OPEN).count(),
            "vulnerable_count": buckets.get("vulnerable", 0),
            "outdated_count": buckets.get("outdated", 0),
            "dependencies_audited": audited,
            "prs_opened": pulls.count(),
            "prs_merged": merged.count(),
            "data": data,
        },
    )
    publish(
        TOPIC, "report_built", {"repository_id": repository.pk, "report_id": report.pk, "score": report.score}
    )
    return report


def _brief(finding: CodeFinding) -> dict:
    return {
        "id": finding.pk,
        "kind": finding.kind,
        "category": finding.category,
        "path": finding.path,
        "line": finding.line,
        "name": finding.name,
    }
