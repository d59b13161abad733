"""The Code Health page's read models and the Overview's code-health line."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from codehealth.models import ContractViolation, Repository, ReviewStatus, Scan, ScanStatus
from juggernaut.areas import AreaStatus
from juggernaut.charts import Series, chart_build

TREND_SCANS = 20
STUCK_AFTER = timedelta(minutes=30)


def latest_scans(repositories) -> dict[int, Scan]:
    """Each repository's latest finished or failed scan."""
    latest: dict[int, Scan] = {}
    for scan in Scan.objects.filter(repository__in=repositories).exclude(status=ScanStatus.RUNNING):
        latest.setdefault(scan.repository_id, scan)  # ordered newest first
    return latest


def score_chart(repository: Repository) -> dict:
    """Score per finished scan, oldest first, in the HQ's one chart component."""
    scans = list(repository.scans.filter(status=ScanStatus.DONE).order_by("-started_at")[:TREND_SCANS])[::-1]
    return chart_build(
        f"Score of {repository.name}, last {len(scans) or TREND_SCANS} scans",
        labels=[s.started_at.strftime("%d %b") for s in scans],
        # bars first, so the score's line is drawn over them
        series=[
            Series("open findings", "findings", [s.findings_count for s in scans], axis="right"),
            Series("score", "0-100", [s.score or 0 for s in scans], kind="line"),
        ],
    )


def codehealth_area_status(repositories=None) -> AreaStatus:
    """The Overview's line (every repository) or the page's headline (``repositories``, the operator's):
    the worst thing first, in words, with what to do."""
    repositories = list(Repository.objects.all() if repositories is None else repositories)
    if not repositories:
        return AreaStatus("idle", "No repository is registered: nothing is analysed.",
                          "Add one with POST /api/codehealth/repositories or in the admin.")  # fmt: skip
    latest = latest_scans(repositories)
    # a scan is bounded by its clone's timeout plus the analysis; one still "running" long after that
    # was cut off (the jobs process stopped) and will never finish by itself
    cutoff = timezone.now() - timedelta(seconds=settings.CODEHEALTH_CLONE_TIMEOUT_SECONDS) - STUCK_AFTER
    stuck = Scan.objects.filter(repository__in=repositories, status=ScanStatus.RUNNING, started_at__lt=cutoff)
    if stuck.exists():
        scan = stuck.select_related("repository").first()
        return AreaStatus("warn", f"A scan of {scan.repository.name} started long ago and never finished.",
                          "Check that the jobs process is up (manage.py qcluster), then press Scan now.",
                          attention=stuck.count())  # fmt: skip
    failed = [r for r in repositories if r.pk in latest and latest[r.pk].status == ScanStatus.FAILED]
    if failed:
        scan = latest[failed[0].pk]
        return AreaStatus("error", f"The last scan of {failed[0].name} failed: {scan.error[:120]}",
                          "Fix the cause and press Scan now on Code Health.", attention=len(failed))  # fmt: skip
    contract = ContractViolation.objects.filter(status=ReviewStatus.OPEN, repository__in=repositories)
    vulnerable = Q(kind="dependency", category__startswith="vuln", fixed_scan__isnull=True)
    vulnerable_count = sum(r.findings.filter(vulnerable).count() for r in repositories)
    if vulnerable_count:
        return AreaStatus("warn", f"{vulnerable_count} vulnerable dependenc{'y' if vulnerable_count == 1 else 'ies'} "
                          "in your repositories.", "Open Code Health and create a task to upgrade.",
                          attention=vulnerable_count)  # fmt: skip
    if contract.exists():
        count = contract.count()
        return AreaStatus("warn", f"{count} frontend/backend contract mismatch{'es' if count != 1 else ''} open.",
                          "Open Code Health to see both sides and create a task.", attention=count)  # fmt: skip
    never = [r for r in repositories if r.pk not in latest]
    if never:
        return AreaStatus(
            "idle", f"{never[0].name} has never been scanned.", "Press Scan now on Code Health."
        )
    worst = min(repositories, key=lambda r: latest[r.pk].score or 0)
    not_audited = [r.name for r in repositories if not latest[r.pk].counts.get("dependencies_audited")]
    detail = f"Dependency audit not run on {', '.join(not_audited[:3])}." if not_audited else ""
    return AreaStatus("ok", f"{len(repositories)} repositor{'y' if len(repositories) == 1 else 'ies'}; lowest score "
                      f"{latest[worst.pk].score} ({worst.name}).", detail)  # fmt: skip
