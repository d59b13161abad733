"""The System Health page's read models and live fragments, and the Overview's logs line.

Fragments (``logs-attention``, ``logs-top``, ``logs-alerts``, ``logs-crawler``) are top-level elements
with stable ids; the HQ websocket sends them out-of-band after every ``logs`` event.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Case, Sum, Value, When
from django.template.loader import render_to_string
from django.utils import timezone

from juggernaut.areas import AreaStatus
from logscrawler import selectors
from logscrawler.models import (
    AlertRule,
    CrawlRun,
    ErrorFingerprint,
    ErrorMinute,
    FingerprintStatus,
    LogAlert,
    LogService,
)

FRAGMENTS = ["attention", "top", "alerts", "crawler"]
SPARK_BUCKETS = 12  # five-minute buckets in the last hour; hourly buckets in the last day
ATTENTION_STATUSES = (FingerprintStatus.NEW, FingerprintStatus.REGRESSED)
RECENT_RUNS = 10


def _sparkline(fingerprint_ids: list[int], window: str, now: datetime) -> dict[int, dict]:
    """Occurrences per bucket of each fingerprint, as SVG points (0..100 wide, 0..20 high)."""
    span = selectors.WINDOWS[window]
    bucket = span / SPARK_BUCKETS
    start = now - span
    counts: dict[int, list[int]] = {pk: [0] * SPARK_BUCKETS for pk in fingerprint_ids}
    rows = ErrorMinute.objects.filter(fingerprint_id__in=fingerprint_ids, minute__gte=start).values_list(
        "fingerprint_id", "minute", "count"
    )
    for pk, minute, count in rows:
        index = min(int((minute - start) / bucket), SPARK_BUCKETS - 1)
        counts[pk][index] += count
    out = {}
    for pk, values in counts.items():
        peak = max(values) or 1
        step = 100 / (SPARK_BUCKETS - 1)
        points = " ".join(f"{i * step:.1f},{20 - 18 * v / peak:.1f}" for i, v in enumerate(values))
        out[pk] = {
            "points": points,
            "peak": max(values),
            "values": values,
            "bucket_minutes": int(bucket.seconds / 60),
        }
    return out


def top_context(now: datetime) -> list[dict]:
    """Per window, the top errors with their sparkline, grouped by service in the table."""
    windows = []
    for window in ("1h", "24h"):
        rows = selectors.top_errors(window, now=now, limit=15)
        sparks = _sparkline([fp.pk for fp, _ in rows], window, now)
        windows.append(
            {
                "window": window,
                "rows": [{"fp": fp, "count": count, "spark": sparks[fp.pk]} for fp, count in rows],
            }
        )
    return windows


def crawler_state(now: datetime) -> dict:
    """The crawler in words: configured or not, last run, next run, budget, the recent runs."""
    recent = list(CrawlRun.objects.exclude(status=CrawlRun.Status.RUNNING)[:RECENT_RUNS])
    last = recent[0] if recent else None
    running = CrawlRun.objects.filter(status=CrawlRun.Status.RUNNING).first()
    configured = bool(settings.RAILWAY_TOKEN or settings.RAILWAY_API_TOKEN)
    every = timedelta(minutes=settings.LOGS_CRAWL_MINUTES)
    state = {
        "last": last,
        "recent": recent,
        "running": running,
        "configured": configured,
        "every": settings.LOGS_CRAWL_MINUTES,
        "hourly": settings.LOGS_RAILWAY_HOURLY_REQUESTS,
    }
    if last is not None:
        state["next_at"] = last.started_at + every
        state["late"] = configured and now - last.started_at > 3 * every
    return state


def context(now: datetime | None = None) -> dict:
    now = now or timezone.now()
    attention = list(
        ErrorFingerprint.objects.select_related("service")
        .filter(status__in=ATTENTION_STATUSES, merged_into__isnull=True)
        .order_by("-last_seen")[:20]
    )
    return {
        "now": now,
        "attention": attention,
        "windows": top_context(now),
        "alerts": list(
            LogAlert.objects.select_related("service", "fingerprint").filter(closed_at__isnull=True)[:30]
        ),
        "crawler": crawler_state(now),
        "services": LogService.objects.count(),
    }


def render_fragments(ctx: dict | None = None) -> str:
    ctx = {**(ctx or context()), "oob": True}
    return "".join(render_to_string(f"logscrawler/_{name}.html", ctx) for name in FRAGMENTS)


DETAIL_PAGE = "logs-fp-"


def detail_page(pk: int) -> str:
    """The live page name of one error's page: it follows the ``logs`` topic with its own fragment."""
    return f"{DETAIL_PAGE}{pk}"


def render_detail(envelopes: list[dict] | None, page: str) -> str:
    """The error's status, counts and task, swapped in place on its own page."""
    pk = page.removeprefix(DETAIL_PAGE)
    fingerprint = (
        ErrorFingerprint.objects.select_related("service", "task", "merged_into").filter(pk=pk).first()
        if pk.isdigit()
        else None
    )
    if fingerprint is None:
        return ""
    return render_to_string(
        "logscrawler/_detail.html", {"fp": fingerprint, "now": timezone.now(), "oob": True}
    )


def render_detail_resync(page: str) -> str:
    return render_detail(None, page)


def render_events(envelopes: list[dict]) -> str:
    return render_fragments()


def render_resync() -> str:
    return render_fragments()


# Worst first: users failing now, a fix undone, a surge, lost evidence, then one more new error.
ALERT_SEVERITY = [
    AlertRule.SUSTAINED_5XX,
    AlertRule.REGRESSION,
    AlertRule.SPIKE,
    AlertRule.LOGS_DROPPED,
    AlertRule.NEW_FINGERPRINT,
]


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut between words (with an ellipsis), never inside one."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0] if " " in text[: limit - 1] else ""
    return f"{cut.rstrip(' ,;:')}…" if cut else "…"


def worst_alert(alerts) -> LogAlert | None:
    """The open alert an operator should see first: by rule severity, then the latest."""
    rank = Case(*(When(rule=rule, then=Value(i)) for i, rule in enumerate(ALERT_SEVERITY)), default=Value(99))
    return alerts.select_related("service").annotate(rank=rank).order_by("rank", "-opened_at", "-pk").first()


def logs_area_status() -> AreaStatus:
    """The Overview's line: the worst thing first, in words, with what to do."""
    now = timezone.now()
    regressed = ErrorFingerprint.objects.filter(status=FingerprintStatus.REGRESSED, merged_into__isnull=True)
    new = ErrorFingerprint.objects.filter(status=FingerprintStatus.NEW, merged_into__isnull=True)
    alerts = LogAlert.objects.filter(closed_at__isnull=True)
    crawler = crawler_state(now)
    last_hour = (
        ErrorMinute.objects.filter(minute__gte=now - timedelta(hours=1)).aggregate(n=Sum("count"))["n"] or 0
    )
    if regressed.exists():
        fp = regressed.select_related("service").order_by("-last_seen").first()
        return AreaStatus(
            "error",
            f"{regressed.count()} resolved error(s) came back, latest on {fp.service.name}: "
            f"{clip(fp.template, 90)}",
            "Open System Health to look at it and its task.",
        )
    if alerts.exists():
        alert = worst_alert(alerts)
        return AreaStatus(
            "warn",
            f"{alerts.count()} open alert(s); worst on {alert.service.name}: "
            f"{alert.get_rule_display()}: {clip(alert.message, 90)}",
            "Open System Health to acknowledge or resolve.",
        )
    if new.exists():
        return AreaStatus(
            "warn",
            f"{new.count()} new error(s) not looked at yet.",
            "Open System Health to acknowledge or resolve them.",
        )
    if crawler.get("last") and crawler["last"].status in (CrawlRun.Status.FAILED, CrawlRun.Status.PARTIAL):
        return AreaStatus(
            "error",
            f"The last crawl {crawler['last'].status}: {clip('; '.join(crawler['last'].errors), 120)}",
            "Check the Railway token and the crawler on System Health.",
        )
    if crawler.get("late"):
        return AreaStatus(
            "warn",
            "The log crawler has not run for a while: is the jobs process up?",
            "Start it with make run or manage.py qcluster.",
        )
    if not crawler["configured"]:
        if last_hour:
            return AreaStatus(
                "ok", f"{last_hour} error(s) ingested in the last hour, all known; Railway not connected."
            )
        return AreaStatus(
            "idle",
            "Railway is not connected: no logs are crawled.",
            "Set RAILWAY_TOKEN (or RAILWAY_API_TOKEN), or push lines to POST /api/logs/ingest.",
        )
    return AreaStatus("ok", f"No new errors; {last_hour} known error(s) in the last hour.")
