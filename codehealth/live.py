"""The Code Health pages' read models and live fragments, and the Overview's code-health line.

Repositories belong to their owners, so every line and fragment here is rendered for its viewer:
the index (page ``codehealth``) and one repository's page (``codehealth-<id>`` or
``codehealth-<id>-<kind>`` when its findings are filtered) follow the ``codehealth`` topic. That topic
is readable by every operator (the activity feed, the events API), so its events carry ids only,
never a repository's name, URL or error: those are on the owner's pages.
"""

from datetime import timedelta

from django.conf import settings
from django.core.paginator import Paginator
from django.db.models import Count, OuterRef, Q, Subquery
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from codehealth.findings import KINDS
from codehealth.models import (
    AutoPullRequest,
    ChecksState,
    CodeFinding,
    CodeHealthReport,
    ContractViolation,
    PullStatus,
    Repository,
    ReviewStatus,
    Scan,
    ScanStatus,
)
from juggernaut.areas import Action, AreaStatus
from juggernaut.charts import Series, chart_build
from juggernaut.feed import FeedItem

TREND_SCANS = 20
STUCK_AFTER = timedelta(minutes=30)
QUEUED_TOO_LONG = timedelta(minutes=5)  # the hourly schedule aside, a queued scan starts within seconds
FINDINGS_PER_PAGE = 50
INDEX_PAGE = "codehealth"
PAGE_PREFIX = "codehealth-"


def _newest(rows, repositories) -> dict:
    """Each repository's newest row of ``rows`` (a queryset in its model's newest-first order), in two
    queries however long the history: the pages and lines ask this on every refresh."""
    newest = rows.filter(repository=OuterRef("pk")).values("pk")[:1]
    pairs = (
        Repository.objects.filter(pk__in=[r.pk for r in repositories])
        .annotate(newest=Subquery(newest))
        .values_list("pk", "newest")
    )
    found = dict(pairs)
    rows_by_pk = rows.model.objects.in_bulk([pk for pk in found.values() if pk])
    return {repo: rows_by_pk[pk] for repo, pk in found.items() if pk}


def latest_scans(repositories) -> dict[int, Scan]:
    """Each repository's latest finished or failed scan."""
    return _newest(Scan.objects.exclude(status=ScanStatus.RUNNING), repositories)


def score_chart(repository: Repository) -> dict:
    """Score per finished scan, oldest first, in the HQ's one chart component."""
    scans = list(repository.scans.filter(status=ScanStatus.DONE).order_by("-started_at")[:TREND_SCANS])[::-1]
    return chart_build(
        f"Score of {repository.name}, last {len(scans) or TREND_SCANS} scans",
        labels=[s.started_at.strftime("%d %b") for s in scans],
        # bars first, so the score's line is drawn over them
        series=[
            Series("open findings", "findings", [s.findings_count for s in scans], axis="right"),
            Series("score", "0-100", [s.score or 0 for s in scans], kind="line", top=100),
        ],
    )


def codehealth_area_status(viewer=None) -> AreaStatus:
    """The line about the repositories ``viewer`` may see (None: every one), on the Overview and atop
    the Code Health page: the worst thing first, in words, with what to do."""
    repositories = list(
        Repository.objects.for_user(viewer) if viewer is not None else Repository.objects.all()
    )
    if not repositories:
        whose = "of yours " if viewer is not None and not viewer.is_superuser else ""
        return AreaStatus(
            "idle",
            f"No repository {whose}is registered: nothing is analysed.",
            "Add one in the admin; the API docs show how to script it.",
            actions=[Action("Add a repository", href=reverse("admin:codehealth_repository_add"))],
        )
    now = timezone.now()
    waiting = [r for r in repositories if r.scan_requested_at and now - r.scan_requested_at > QUEUED_TOO_LONG]
    if waiting:
        return AreaStatus(
            "warn",
            f"A scan of {waiting[0].name} was queued long ago and has not started.",
            "Start the jobs process (manage.py qcluster); the scan then runs by itself.",
            attention=len(waiting),
        )
    latest = latest_scans(repositories)
    # a scan is bounded by its clone's timeout plus the analysis; one still "running" long after that
    # was cut off (the jobs process stopped) and will never finish by itself
    cutoff = now - timedelta(seconds=settings.CODEHEALTH_CLONE_TIMEOUT_SECONDS) - STUCK_AFTER
    stuck = Scan.objects.filter(repository__in=repositories, status=ScanStatus.RUNNING, started_at__lt=cutoff)
    if stuck.exists():
        scan = stuck.select_related("repository").first()
        return AreaStatus(
            "warn",
            f"A scan of {scan.repository.name} started long ago and never finished.",
            "Check that the jobs process is up (manage.py qcluster), then press Scan now.",
            attention=stuck.count(),
        )
    failed = [r for r in repositories if r.pk in latest and latest[r.pk].status == ScanStatus.FAILED]
    if failed:
        scan = latest[failed[0].pk]
        return AreaStatus(
            "error",
            f"The last scan of {failed[0].name} failed: {scan.error[:120]}",
            "Fix the cause and press Scan now on Code Health.",
            attention=len(failed),
        )
    failing = AutoPullRequest.objects.filter(
        repository__in=repositories, status=PullStatus.OPEN, checks=ChecksState.FAILING
    ).select_related("repository")
    if failing.exists():
        pull = failing.first()
        return AreaStatus(
            "warn",
            f"Auto-PR #{pull.number} of {pull.repository.name} fails the repository's "
            f"checks ({pull.checks_detail or 'a check'}).",
            "Open it on GitHub: fix the check or close the PR (its fixes return with the next one).",
            attention=failing.count(),
        )
    contract = ContractViolation.objects.filter(status=ReviewStatus.OPEN, repository__in=repositories)
    vulnerable_count = (
        CodeFinding.objects.open()
        .filter(repository__in=repositories, kind="dependency", category__startswith="vuln")
        .count()
    )
    if vulnerable_count:
        return AreaStatus(
            "warn",
            f"{vulnerable_count} vulnerable dependenc{'y' if vulnerable_count == 1 else 'ies'} "
            "in your repositories.",
            "Open Code Health and create a task to upgrade.",
            attention=vulnerable_count,
        )
    if contract.exists():
        count = contract.count()
        return AreaStatus(
            "warn",
            f"{count} frontend/backend contract mismatch{'es' if count != 1 else ''} open.",
            "Open Code Health to see both sides and create a task.",
            attention=count,
        )
    never = [r for r in repositories if r.pk not in latest]
    if never:
        scanning = Scan.objects.filter(repository__in=never, status=ScanStatus.RUNNING).exists()
        return AreaStatus(
            "idle",
            f"{never[0].name} is being scanned for the first time."
            if scanning
            else f"{never[0].name} has never been scanned.",
            "Its score appears when the scan finishes." if scanning else "Press Scan now on Code Health.",
        )
    worst = min(repositories, key=lambda r: latest[r.pk].score or 0)
    lowest = latest[worst.pk].score or 0
    summary = (
        f"{len(repositories)} repositor{'y' if len(repositories) == 1 else 'ies'}; lowest score "
        f"{lowest} ({worst.name})"
    )
    if lowest < settings.CODEHEALTH_SCORE_ERROR_BELOW or lowest < settings.CODEHEALTH_SCORE_WARN_BELOW:
        below = min(
            t
            for t in (settings.CODEHEALTH_SCORE_ERROR_BELOW, settings.CODEHEALTH_SCORE_WARN_BELOW)
            if lowest < t
        )
        return AreaStatus(
            "error" if lowest < settings.CODEHEALTH_SCORE_ERROR_BELOW else "warn",
            f"{summary}: below {below}.",
            f"Open {worst.name} on Code Health: its findings are listed by what they cost; fix or dismiss "
            "the heaviest.",
            attention=1,
        )
    not_audited = [r.name for r in repositories if not latest[r.pk].counts.get("dependencies_audited")]
    if not_audited:
        return AreaStatus(
            "warn",
            f"{summary}, but the dependency audit did not run on {', '.join(not_audited[:3])}: "
            "its score does not count vulnerabilities.",
            "Allow registry lookups (CODEHEALTH_REGISTRY_LOOKUPS) or provide an OSV snapshot "
            "(CODEHEALTH_OSV_SNAPSHOT), then press Scan now.",
            attention=len(not_audited),
        )
    return AreaStatus("ok", f"{summary}.", "")


# --- live fragments ------------------------------------------------------------------------------


def index_context(viewer) -> dict:
    repositories = list(Repository.objects.for_user(viewer))
    latest, reports = latest_scans(repositories), _newest(CodeHealthReport.objects.all(), repositories)
    running = dict(
        Scan.objects.filter(repository__in=repositories, status=ScanStatus.RUNNING).values_list(
            "repository_id", "started_at"
        )
    )
    rows = [
        {"repository": r, "scan": latest.get(r.pk), "report": reports.get(r.pk), "running": running.get(r.pk)}
        for r in repositories
    ]
    return {"rows": rows, "status": codehealth_area_status(viewer), "now": timezone.now()}


def render_index(envelopes: list[dict] | None = None, *, viewer) -> str:
    """The index's headline and repository table, out-of-band."""
    ctx = index_context(viewer) | {"oob": True}
    return render_to_string("codehealth/_status.html", ctx) + render_to_string(
        "codehealth/_repositories.html", ctx
    )


DISMISSED = "dismissed"  # the drill-down's view of dismissed findings, beside one per kind
UNCERTAIN = "uncertain"  # stale items something may keep alive: shown apart, for a human to judge
VIEWS = (*KINDS, UNCERTAIN, DISMISSED)


def page_name(repository_id: int, kind: str = "", page: int = 1) -> str:
    """``codehealth-<id>[-<view>][-p<page>]``: what a live refresh of the page redraws."""
    return (
        f"{PAGE_PREFIX}{repository_id}"
        + (f"-{kind}" if kind in VIEWS else "")
        + (f"-p{page}" if isinstance(page, int) and page > 1 else "")
    )


def repository_of_page(viewer, page: str) -> tuple[Repository | None, str, int]:
    """The viewer's repository a page name points at (None: not theirs, or no such page), its view and
    the page of findings."""
    ident, *rest = page.removeprefix(PAGE_PREFIX).split("-")
    kind, number = "", 1
    for part in rest:
        if part in VIEWS and not kind:
            kind = part
        elif part.startswith("p") and part[1:].isdigit() and len(part) < 8:
            number = int(part[1:])
        else:
            return None, "", 1
    if not ident.isdigit() or len(ident) > 18:
        return None, "", 1
    return Repository.objects.for_user(viewer).filter(pk=int(ident)).first(), kind, number


def _open_views(repository: Repository) -> tuple[dict, dict[str, int]]:
    """The querysets of every view of the drill-down, and how many findings each holds."""
    rows = CodeFinding.objects.filter(repository=repository)
    open_rows = rows.open()
    unsure = Q(kind="stale", confidence__lt=settings.CODEHEALTH_STALE_MIN_CONFIDENCE)
    views = {"": open_rows.exclude(unsure), UNCERTAIN: open_rows.filter(unsure), DISMISSED: rows.dismissed()}
    views |= {k: open_rows.filter(kind=k).exclude(unsure) for k in KINDS}
    counts = dict(
        open_rows.exclude(unsure).values_list("kind").annotate(n=Count("pk")).values_list("kind", "n")
    )
    totals = {k: counts.get(k, 0) for k in KINDS}
    totals[""] = sum(totals.values())
    totals[UNCERTAIN] = views[UNCERTAIN].count()
    totals[DISMISSED] = views[DISMISSED].count()
    return views, totals


def detail_context(repository: Repository, kind: str = "", page: int = 1) -> dict:
    kind = kind if kind in VIEWS else ""
    views, totals = _open_views(repository)
    findings = views[kind].order_by("kind", "-confidence", "path", "line", "pk")
    paginator = Paginator(findings, FINDINGS_PER_PAGE)
    shown = paginator.get_page(page)
    return {
        "repository": repository,
        "scan": repository.scans.first(),
        "report": repository.reports.first(),
        "chart": score_chart(repository),
        "findings": shown.object_list,
        "findings_page": shown,
        "views": [
            {"key": key, "label": {"": "all open"}.get(key, key), "count": totals[key]}
            for key in ("", *KINDS, UNCERTAIN, DISMISSED)
        ],
        "dismissed_count": totals[DISMISSED],
        "kinds": KINDS,
        "kind": kind,
        "live_page": page_name(repository.pk, kind, shown.number),
        "pulls": repository.pull_requests.all()[:10],
        "now": timezone.now(),
    }


def render_detail(page: str, *, viewer) -> str:
    """One repository's summary, trend, findings and auto-PRs, out-of-band ("" for a page not theirs)."""
    repository, kind, number = repository_of_page(viewer, page)
    if repository is None:
        return ""
    ctx = detail_context(repository, kind, number) | {"oob": True}
    return "".join(
        render_to_string(f"codehealth/_{part}.html", ctx)
        for part in ("summary", "trend", "findings", "pulls")
    )


def render_detail_events(envelopes: list[dict], page: str, *, viewer) -> str:
    """Only events about the page's repository redraw it."""
    repository, _, _ = repository_of_page(viewer, page)
    if repository is None or not any(e["data"].get("repository_id") == repository.pk for e in envelopes):
        return ""
    return render_detail(page, viewer=viewer)


FEED_WORDS = {
    "repository_added": ("was registered", "info"),
    "scan_queued": ("has a scan queued", "info"),
    "scan_started": ("is being scanned", "info"),
    "scan_finished": ("was scanned", "ok"),
    "scan_failed": ("could not be scanned: its page says why", "error"),
    "report_built": ("has this week's report", "info"),
    "pull_request_opened": ("has a new auto-PR", "ok"),
}


def describe_event(type_: str, data: dict) -> FeedItem | None:
    """Code-health events in the activity feed, by repository number (the page has the name)."""
    pk = data.get("repository_id")
    if type_ not in FEED_WORDS or not isinstance(pk, int):
        return None
    words, severity = FEED_WORDS[type_]
    extra = f" (score {data['score']})" if isinstance(data.get("score"), int) else ""
    return FeedItem(
        f"Code health: repository #{pk} {words}{extra}.",
        severity,
        reverse("codehealth:repository", kwargs={"pk": pk}),
    )
