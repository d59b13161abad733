"""Code health's tables: repositories, scans, findings (with the stale items and contract violations
picked out for review), weekly reports and auto-PRs.

A finding keeps one row per repository and fingerprint (kind, category, path, name: the line is left
out, so code that moves keeps its identity) across scans: ``first_scan`` says when it appeared,
``fixed_scan`` when a later scan no longer found it.
"""

import hashlib

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from juggernaut.http import url_shown


class RepositoryQuerySet(models.QuerySet):
    def for_user(self, user) -> "RepositoryQuerySet":
        """The repositories ``user`` may see and act on: their own; an admin's, all."""
        return self if getattr(user, "is_superuser", False) else self.filter(owner=user)


class Repository(models.Model):
    """A repository to analyse: on GitHub (``github_owner``/``github_name``), or a local checkout."""

    # owner/name, or a label for a local path; unique per owner (a global uniqueness would tell anyone
    # which names other operators use)
    name = models.CharField(max_length=200)
    github_owner = models.CharField(max_length=100, blank=True, default="")
    github_name = models.CharField(max_length=100, blank=True, default="")
    # resolved; registered once (checked by repository_create: only admins register local paths, and a
    # database constraint would refuse to migrate over the duplicates earlier versions let in)
    local_path = models.CharField(max_length=1000, blank=True, default="")
    default_branch = models.CharField(max_length=200, default="main")
    frontend_root = models.CharField(max_length=300, blank=True, default="")
    backend_root = models.CharField(max_length=300, blank=True, default="")
    scan_every_days = models.PositiveSmallIntegerField(default=7)  # 0: only when asked
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    last_scanned_at = models.DateTimeField(null=True, blank=True)
    scan_requested_at = models.DateTimeField(null=True, blank=True)  # a scan queued and not started yet
    # A running instance's OpenAPI document (django-ninja's /api/openapi.json), fetched at each scan;
    # blank: a schema exported in the checkout
    schema_url = models.URLField(max_length=500, blank=True, default="")

    objects = RepositoryQuerySet.as_manager()

    class Meta:
        db_table = "code_health_repositories"
        ordering = ["name"]
        verbose_name_plural = "repositories"
        constraints = [
            models.CheckConstraint(
                condition=(~Q(github_owner="") & ~Q(github_name="")) | ~Q(local_path=""),
                name="codehealth_repository_has_a_source",
            ),
            models.UniqueConstraint(fields=["owner", "name"], name="codehealth_repository_name_uniq"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def on_github(self) -> bool:
        return bool(self.github_owner and self.github_name)

    @property
    def schema_url_shown(self) -> str:
        return url_shown(self.schema_url)

    @property
    def clone_url(self) -> str:
        """The HTTPS URL to clone (never with a token in it: that goes in a header)."""
        host = settings.GITHUB_CLONE_URL.rstrip("/")
        return f"{host}/{self.github_owner}/{self.github_name}.git"


class ScanStatus(models.TextChoices):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Scan(models.Model):
    """One analysis of a repository at one commit."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="scans")
    status = models.CharField(max_length=10, choices=ScanStatus.choices, default=ScanStatus.RUNNING)
    commit_sha = models.CharField(max_length=40, blank=True, default="")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    score = models.PositiveSmallIntegerField(null=True, blank=True)  # 0-100, None until done
    findings_count = models.PositiveIntegerField(default=0)
    new_count = models.PositiveIntegerField(default=0)
    fixed_count = models.PositiveIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True)  # kind -> open findings
    error = models.CharField(max_length=500, blank=True, default="")
    # A running scan's parent beats while it clones and while its sandboxed child analyses; one silent
    # for CODEHEALTH_SCAN_LEASE_SECONDS died with its jobs process and is taken over by the sweep. The
    # database fills it, so the release before, which inserts scans without it, runs beside this one.
    heartbeat_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "code_health_scans"
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["repository", "-started_at"], name="codehealth_scan_repo_idx")]

    def __str__(self) -> str:
        return f"{self.repository} scan {self.pk} ({self.status})"


def fingerprint_of(kind: str, category: str, path: str, name: str) -> str:
    return hashlib.sha256(f"{kind}\x00{category}\x00{path}\x00{name}".encode()).hexdigest()[:40]


class FindingQuerySet(models.QuerySet):
    def open(self) -> "FindingQuerySet":
        """Found by the latest scans and not dismissed by an operator: what counts and is shown."""
        return self.filter(fixed_scan__isnull=True, dismissed_at__isnull=True)

    def dismissed(self) -> "FindingQuerySet":
        return self.filter(fixed_scan__isnull=True, dismissed_at__isnull=False)

    def for_user(self, user) -> "FindingQuerySet":
        """Findings of the repositories ``user`` may see (``RepositoryQuerySet.for_user``)."""
        return self.select_related("repository").filter(repository__in=Repository.objects.for_user(user))


class CodeFinding(models.Model):
    """An analyser's finding, kept across scans (see the module docstring)."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="findings")
    fingerprint = models.CharField(max_length=40)
    kind = models.CharField(max_length=20)  # codehealth.findings.KINDS
    category = models.CharField(max_length=40)
    path = models.CharField(max_length=1000)
    line = models.PositiveIntegerField(null=True, blank=True)
    name = models.CharField(max_length=300)
    confidence = models.PositiveSmallIntegerField(default=100)
    reason = models.TextField(blank=True, default="")
    fixable = models.BooleanField(default=False)
    extra = models.JSONField(default=dict, blank=True)
    first_scan = models.ForeignKey(Scan, on_delete=models.CASCADE, related_name="new_findings")
    last_scan = models.ForeignKey(Scan, on_delete=models.CASCADE, related_name="+")
    fixed_scan = models.ForeignKey(
        Scan, on_delete=models.SET_NULL, null=True, blank=True, related_name="fixed"
    )
    task = models.ForeignKey(
        "engine.Task", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    # An operator's "not a problem" (a false alarm, or intended): kept across scans by the fingerprint,
    # it counts against nothing until reopened
    dismissed_at = models.DateTimeField(null=True, blank=True)
    dismissed_by = models.CharField(max_length=150, blank=True, default="")
    dismiss_reason = models.CharField(max_length=300, blank=True, default="")

    objects = FindingQuerySet.as_manager()

    class Meta:
        db_table = "code_health_findings"
        ordering = ["kind", "path", "line"]
        constraints = [
            models.UniqueConstraint(fields=["repository", "fingerprint"], name="codehealth_finding_uniq")
        ]
        # the page's and the API's open findings of a repository
        indexes = [
            models.Index(
                fields=["repository", "kind"],
                condition=Q(fixed_scan__isnull=True),
                name="codehealth_open_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind}/{self.category} {self.path}:{self.line or ''} {self.name}"

    @property
    def is_open(self) -> bool:
        return self.fixed_scan_id is None and self.dismissed_at is None

    @property
    def dedupe_key(self) -> str:
        """The engine's dedupe key of this finding's task: one open task per finding."""
        return f"codehealth:{self.repository_id}:{self.fingerprint}"


class ReviewStatus(models.TextChoices):
    OPEN = "open"
    CONFIRMED = "confirmed"
    DISMISSED = "dismissed"
    REMOVED = "removed"  # a later scan no longer finds it


class StaleCodeItem(models.Model):
    """A stale-code finding confident enough to review (``CODEHEALTH_STALE_MIN_CONFIDENCE``)."""

    finding = models.OneToOneField(CodeFinding, on_delete=models.CASCADE, related_name="stale_item")
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="stale_items")
    category = models.CharField(max_length=20)
    path = models.CharField(max_length=1000)
    line = models.PositiveIntegerField(null=True, blank=True)
    name = models.CharField(max_length=300)
    confidence = models.PositiveSmallIntegerField()
    reason = models.TextField(blank=True, default="")
    status = models.CharField(max_length=10, choices=ReviewStatus.choices, default=ReviewStatus.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "stale_code_items"
        ordering = ["-confidence", "path"]

    def __str__(self) -> str:
        return f"{self.category} {self.name} ({self.path})"


class ContractViolation(models.Model):
    """A frontend/backend contract mismatch, with file and line on both sides where known."""

    finding = models.OneToOneField(CodeFinding, on_delete=models.CASCADE, related_name="contract_violation")
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="contract_violations")
    category = models.CharField(max_length=40)  # missing_endpoint, missing_field, type_change, ...
    method = models.CharField(max_length=10, blank=True, default="")
    endpoint = models.CharField(max_length=500, blank=True, default="")
    frontend_path = models.CharField(max_length=1000, blank=True, default="")
    frontend_line = models.PositiveIntegerField(null=True, blank=True)
    backend_path = models.CharField(max_length=1000, blank=True, default="")
    backend_line = models.PositiveIntegerField(null=True, blank=True)
    message = models.TextField(blank=True, default="")
    status = models.CharField(max_length=10, choices=ReviewStatus.choices, default=ReviewStatus.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "contract_violations"
        ordering = ["endpoint", "category"]

    def __str__(self) -> str:
        return f"{self.category} {self.method} {self.endpoint}"


class CodeHealthReport(models.Model):
    """A repository's weekly report; ``data`` holds the lists the page shows."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="reports")
    week_start = models.DateField()
    scan = models.ForeignKey(Scan, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    score = models.PositiveSmallIntegerField(null=True, blank=True)  # None: no scan finished this week
    previous_score = models.PositiveSmallIntegerField(null=True, blank=True)
    new_count = models.PositiveIntegerField(default=0)
    fixed_count = models.PositiveIntegerField(default=0)
    stale_count = models.PositiveIntegerField(default=0)
    contract_count = models.PositiveIntegerField(default=0)
    vulnerable_count = models.PositiveIntegerField(default=0)
    outdated_count = models.PositiveIntegerField(default=0)
    dependencies_audited = models.BooleanField(default=False)  # False: "not run", never "clean"
    prs_opened = models.PositiveIntegerField(default=0)
    prs_merged = models.PositiveIntegerField(default=0)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "code_health_reports"
        ordering = ["-week_start"]
        constraints = [
            models.UniqueConstraint(fields=["repository", "week_start"], name="codehealth_report_week_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.repository} week of {self.week_start}"

    @property
    def trend(self) -> int | None:
        """Score change since the previous report; None when either is missing."""
        if self.score is None or self.previous_score is None:
            return None
        return self.score - self.previous_score


class PullStatus(models.TextChoices):
    OPEN = "open"
    MERGED = "merged"
    CLOSED = "closed"


class ChecksState(models.TextChoices):
    PENDING = "pending"  # not all checks have finished (or none has reported yet)
    PASSING = "passing"
    FAILING = "failing"


class AutoPullRequest(models.Model):
    """A pull request of mechanical fixes opened through the git data API."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="pull_requests")
    number = models.PositiveIntegerField()
    url = models.URLField(max_length=500, blank=True, default="")
    branch = models.CharField(max_length=200)
    title = models.CharField(max_length=200)
    body = models.TextField()
    commit_sha = models.CharField(max_length=40)
    changes = models.JSONField(default=list)  # [{"path", "line", "rule", "name"}]
    dropped = models.JSONField(default=list, blank=True)  # fixes left out: [{..., "reason"}]
    status = models.CharField(max_length=10, choices=PullStatus.choices, default=PullStatus.OPEN)
    # What the repository's own checks said of the PR's commit, as last read back from GitHub
    checks = models.CharField(max_length=10, choices=ChecksState.choices, default=ChecksState.PENDING)
    checks_detail = models.CharField(max_length=300, blank=True, default="")  # the failing checks' names
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "code_health_pull_requests"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["repository", "number"], name="codehealth_pull_number_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.repository}#{self.number}"
