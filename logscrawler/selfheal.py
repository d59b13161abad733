"""The logs crawler's self-heal checks (errors, Railway reachability) and its safe action."""

from datetime import datetime, timedelta

from django.utils import timezone

from juggernaut.healing import Finding, Fix, Outcome, action, check
from logscrawler import alerts, live
from logscrawler.clients import RailwayClient, RailwayError
from logscrawler.models import AlertRule, AlertThresholds, ErrorFingerprint, ErrorMinute, LogAlert, LogService


def _untracked():
    """New fingerprints that nobody investigates yet."""
    return ErrorFingerprint.objects.filter(status="new", task__isnull=True, merged_into__isnull=True)


@check("errors")
def errors_check(now: datetime) -> list[Finding]:
    """New fingerprints without a task, error spikes, sustained 5xx, and the crawler's own health."""
    found: list[Finding] = []
    untracked = _untracked().count()
    if untracked:
        found.append(
            Finding(
                "errors",
                "warning",
                f"{untracked} new error fingerprint(s) have no investigation.",
                {"count": untracked},
                Fix.safe("investigate_new_errors", "Queue an investigate_error task for each."),
                code="untracked",
            )
        )
    limits = AlertThresholds.effective()
    since = now - timedelta(minutes=limits["window_minutes"] + 1)
    touched: dict[int, list[int]] = {}
    for fp_id, service_id in (
        ErrorMinute.objects.filter(minute__gte=since).values_list("fingerprint_id", "service_id").distinct()
    ):
        touched.setdefault(service_id, []).append(fp_id)
    for service in LogService.objects.filter(pk__in=touched):
        for fp, count, baseline in alerts._spikes(service, touched[service.pk], now, limits):
            found.append(
                Finding(
                    "errors",
                    "critical",
                    f"Error spike in {service.name}: {count} in {limits['window_minutes']} min "
                    f"(baseline {baseline:.1f}): {fp.template[:120]}",
                    {"fingerprint_id": fp.pk, "count": count, "baseline": baseline},
                    Fix.manual(f"/logs/fingerprints/{fp.pk}/", "Open the fingerprint and its task."),
                    code=f"spike:{fp.pk}",
                )
            )
    for alert in LogAlert.objects.filter(rule=AlertRule.SUSTAINED_5XX, closed_at__isnull=True).select_related(
        "service"
    ):
        found.append(
            Finding(
                "errors",
                "critical",
                f"Sustained 5xx on {alert.service.name}: {alert.message[:120]}",
                {"service": alert.service.name},
                Fix.manual("/logs/", "See the service's errors."),
                code=f"5xx:{alert.service_id}",
            )
        )
    crawler = live.crawler_state(now)
    if crawler.get("late"):
        found.append(
            Finding(
                "errors",
                "warning",
                "The log crawler has not run on time.",
                {"last_run": crawler["last"].started_at.isoformat()},
                Fix.manual("manage.py qcluster", "Start the jobs process."),
                code="crawler_late",
            )
        )
    return found


@check("railway")
def railway_check(now: datetime) -> list[Finding]:
    """Railway's API reachable at RAILWAY_API_URL, the token accepted, with rate-limit headroom."""
    client = RailwayClient(budget=1)
    if not client.configured:
        return [
            Finding(
                "railway",
                "info",
                "Railway is not configured.",
                {},
                Fix.manual("RAILWAY_TOKEN", "Set it to crawl logs."),
                code="not_configured",
            )
        ]
    try:
        client.execute("Projects")
    except RailwayError as exc:
        return [
            Finding(
                "railway",
                "critical",
                f"Railway check failed at {client.base_url}: {exc}",
                {"base_url": client.base_url, "permanent": exc.permanent},
                Fix.manual(
                    "RAILWAY_TOKEN" if exc.permanent else "RAILWAY_API_URL", "Check the token and the URL."
                ),
                code="unreachable",
            )
        ]
    left = client.rate_limit.remaining
    if left is not None and client.rate_limit.limit and left < 0.1 * client.rate_limit.limit:
        return [
            Finding(
                "railway",
                "warning",
                f"Railway rate limit nearly spent ({left} left).",
                {"remaining": left},
                Fix.manual("LOGS_RAILWAY_HOURLY_REQUESTS", "Crawl less often."),
                code="rate_limit",
            )
        ]
    return []


@action("investigate_new_errors", touches="engine_tasks", cap=50, reversible=True, auto=True)
def investigate_new_errors(*, dry_run: bool, cap: int, now: datetime) -> Outcome:
    """Queue one investigate_error task for each new fingerprint that has none."""
    fps = list(_untracked().select_related("service").order_by("-last_seen")[:cap])
    changes = [f"fingerprint #{fp.pk}: new task investigate_error" for fp in fps]
    if dry_run:
        return Outcome(len(fps), f"would queue {len(fps)} investigation(s)", changes)
    for fp in fps:
        alerts.task_for_fingerprint(fp, "new error")
    return Outcome(len(fps), f"queued {len(fps)} investigation(s) at {timezone.now():%H:%M}", changes)
