"""django-q2 entry points of code health (thin: they call the scan and report workflows)."""

import logging

from django_q.models import Schedule

from codehealth import autopr, services
from codehealth.models import Repository
from juggernaut.schedules import Declared

log = logging.getLogger(__name__)


def repository_scan(repository_id: int) -> str:
    repository = Repository.objects.filter(pk=repository_id).first()
    if repository is None:
        return "gone"
    scan = services.repository_scan(repository)
    log.info("scan of %s: %s, score %s", repository.name, scan.status, scan.score)
    return scan.status


def scans_sweep() -> int:
    """Close, as failed, the scans whose jobs process died (silent past their lease: scanned again) and
    those left running past their deadline (every minute)."""
    taken_over = services.scans_take_over()
    if taken_over:
        log.warning("took over %s scans whose process died: %s", len(taken_over), [s.pk for s in taken_over])
    closed = services.scans_orphans_close()
    if closed:
        log.warning("closed %s scans left running past their deadline", closed)
    return len(taken_over) + closed


def scans_due() -> int:
    """Sweep, scan every repository whose schedule says so, then read the open auto-PRs back from
    GitHub (merged or closed, and their checks)."""
    scans_sweep()
    due = services.repositories_due()
    for repository in due:
        services.repository_scan(repository)
    autopr.pull_requests_refresh()
    return len(due)


def reports_weekly() -> int:
    """Build this week's report of every repository."""
    count = 0
    for repository in Repository.objects.all():
        services.report_build(repository)
        count += 1
    return count


# What the jobs cluster runs on its own (synced by ``manage.py sync_schedules``).
SCHEDULES = [
    Declared("hq:codehealth-sweep", scans_sweep, Schedule.MINUTES, minutes=1),
    Declared("hq:codehealth-scans", scans_due, Schedule.HOURLY),
    Declared("hq:codehealth-weekly-report", reports_weekly, Schedule.WEEKLY),
]
