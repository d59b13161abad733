"""Alert rules and the engine tasks they raise.

Rules: a new fingerprint; a spike (the last window's count ≥ ``LOGS_SPIKE_FACTOR`` × the baseline rate
and ≥ ``LOGS_SPIKE_MIN``); sustained 5xx (≥ ``LOGS_5XX_PERCENT`` of a service's HTTP responses for
``LOGS_5XX_WINDOWS`` consecutive windows); a regression (a resolved fingerprint is back); Railway
dropping logs. Each rule holds at most one open alert per fingerprint (or per service), enforced by
the database, so a rule that keeps matching does not fire again. A new fingerprint, a spike or a
regression also queues one ``investigate_error`` task per fingerprint (the engine deduplicates on the
fingerprint), linked both ways.
"""

import logging
import re
from datetime import datetime, timedelta

import requests
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from juggernaut.engine import services as engine
from juggernaut.events import publish
from juggernaut.redaction import scrub
from juggernaut.urlguard import OutboundRefused, guarded_session
from logscrawler.apps import TASK_SOURCE
from logscrawler.models import (
    AlertRule,
    AlertThresholds,
    ErrorFingerprint,
    ErrorMinute,
    LogAlert,
    LogLine,
    LogService,
)

log = logging.getLogger(__name__)

TASK_KIND = "investigate_error"
MENTION_RE = re.compile(r"@(channel|here|everyone)\b", re.I)


def task_dedupe_key(fingerprint: ErrorFingerprint) -> str:
    return f"logs.fingerprint.{fingerprint.pk}"


def alert_open(
    rule: str,
    service: LogService,
    message: str,
    *,
    fingerprint: ErrorFingerprint | None = None,
    data: dict | None = None,
    now: datetime | None = None,
) -> LogAlert | None:
    """Open an alert unless this rule already has one open for the fingerprint (or service)."""
    opened = now or timezone.now()
    existing = LogAlert.objects.filter(
        rule=rule, service=service, fingerprint=fingerprint, closed_at__isnull=True
    )
    if existing.exists():
        return None
    try:
        with transaction.atomic():
            alert = LogAlert.objects.create(
                rule=rule,
                service=service,
                fingerprint=fingerprint,
                message=message,
                data=data or {},
                opened_at=opened,
            )
    except IntegrityError:  # another process opened it first
        return None
    payload = {
        "alert_id": alert.pk,
        "rule": rule,
        "service": service.name,
        "fingerprint_id": fingerprint.pk if fingerprint else None,
        "message": message,
    }
    publish("logs", "alert_opened", payload)
    if settings.LOGS_ALERT_WEBHOOK_SECRET_URL:
        transaction.on_commit(
            lambda: _webhook_send(f"[{service.name}] {alert.get_rule_display()}: {message}")
        )
    return alert


def slack_escape(text: str) -> str:
    """Log text as Slack shows it literally: ``&``, ``<`` and ``>`` escaped (so ``<!channel>``,
    ``<@U123>`` and links are text), and ``@channel``-style words broken with a zero-width space, so a
    log line can neither mention nor link."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return MENTION_RE.sub("@\u200b\\1", text)


def _webhook_send(text: str) -> None:
    """Post a Slack-compatible message through the outbound guard; a failing webhook is logged, never
    raised."""
    try:
        response = guarded_session(max_retries=1, timeout=5, deadline=15).post(
            settings.LOGS_ALERT_WEBHOOK_SECRET_URL, json={"text": slack_escape(text[:3000])}
        )
        response.raise_for_status()
    except OutboundRefused as exc:
        log.warning("alert webhook not sent: %s", scrub(str(exc)))  # a late answer's message names the path
    except requests.RequestException as exc:  # a notification must never break ingestion
        log.warning("alert webhook failed: %s", exc.__class__.__name__)


def task_for_fingerprint(fingerprint: ErrorFingerprint, reason: str) -> int:
    """Queue (or find) the one open investigation task of a fingerprint and link it back."""
    task = engine.task_create(
        f"Investigate {reason}: {fingerprint.template[:150]}",
        kind=TASK_KIND,
        payload={
            "fingerprint_id": fingerprint.pk,
            "service": fingerprint.service.name,
            "template": fingerprint.template[:2000],
            "exception_type": fingerprint.exception_type,
            "sample": fingerprint.sample[:4000],
            "reason": reason,
        },
        source=TASK_SOURCE,
        dedupe_key=task_dedupe_key(fingerprint),
        origin={"type": "fingerprint", "id": fingerprint.pk},
        actor="logs",
    )
    if fingerprint.task_id != task.pk:
        ErrorFingerprint.objects.filter(pk=fingerprint.pk).update(task=task)
        fingerprint.task_id = task.pk
    return task.pk


def alerts_evaluate(
    service: LogService,
    *,
    new: list[int],
    regressed: list[int],
    touched: list[int],
    now: datetime | None = None,
) -> list[LogAlert]:
    """Run every rule for what one ingested batch changed; returns the alerts opened."""
    now = now or timezone.now()
    limits = AlertThresholds.effective()
    opened: list[LogAlert] = []
    for fp in ErrorFingerprint.objects.select_related("service").filter(pk__in=new, status="new"):
        alert = alert_open(AlertRule.NEW_FINGERPRINT, service, fp.template[:300], fingerprint=fp, now=now)
        if alert:
            opened.append(alert)
        task_for_fingerprint(fp, "new error")
    for fp in ErrorFingerprint.objects.select_related("service").filter(pk__in=regressed):
        alert = alert_open(
            AlertRule.REGRESSION,
            service,
            f"came back after it was resolved: {fp.template[:300]}",
            fingerprint=fp,
            now=now,
        )
        if alert:
            opened.append(alert)
        task_for_fingerprint(fp, "regression")
    for fp, count, baseline in _spikes(service, touched, now, limits):
        alert = alert_open(
            AlertRule.SPIKE,
            service,
            f"{count} in {limits['window_minutes']} min, baseline {baseline:.1f}: {fp.template[:300]}",
            fingerprint=fp,
            data={"count": count, "baseline": baseline},
            now=now,
        )
        if alert:
            opened.append(alert)
            task_for_fingerprint(fp, "spike")
    alert = _sustained_5xx(service, now, limits)
    if alert:
        opened.append(alert)
    return opened


def _spikes(service: LogService, fingerprint_ids: list[int], now: datetime, limits: dict):
    """(fingerprint, count in the window, baseline per window) of the fingerprints that spike."""
    window = timedelta(minutes=limits["window_minutes"])
    baseline_span = timedelta(minutes=limits["spike_baseline_minutes"])
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - window
    rows = ErrorMinute.objects.filter(fingerprint_id__in=fingerprint_ids, minute__gte=start - baseline_span)
    recent = dict(
        rows.filter(minute__gte=start)
        .values("fingerprint_id")
        .annotate(n=Sum("count"))
        .values_list("fingerprint_id", "n")
    )
    before = dict(
        rows.filter(minute__lt=start)
        .values("fingerprint_id")
        .annotate(n=Sum("count"))
        .values_list("fingerprint_id", "n")
    )
    windows = baseline_span / window
    for fp in ErrorFingerprint.objects.select_related("service").filter(pk__in=recent):
        count = recent[fp.pk]
        # a fingerprint with no history has a baseline of one per window: its first burst is a spike
        baseline = max(before.get(fp.pk, 0) / windows, 1.0)
        if count >= limits["spike_min"] and count >= limits["spike_factor"] * baseline:
            yield fp, count, baseline


def _sustained_5xx(service: LogService, now: datetime, limits: dict) -> LogAlert | None:
    """Open the service's 5xx alert when each of the last N windows had too many 5xx answers."""
    window = timedelta(minutes=limits["window_minutes"])
    shares = []
    for i in range(limits["fivexx_windows"]):
        end = now - i * window
        counts = LogLine.objects.filter(
            service=service, http_status__isnull=False, timestamp__gt=end - window, timestamp__lte=end
        ).aggregate(total=Count("pk"), failed=Count("pk", filter=Q(http_status__gte=500)))
        if counts["total"] < limits["fivexx_min_requests"]:
            return None
        share = 100.0 * counts["failed"] / counts["total"]
        if share < limits["fivexx_percent"]:
            return None
        shares.append(round(share, 1))
    return alert_open(
        AlertRule.SUSTAINED_5XX,
        service,
        f"{min(shares)}%+ of HTTP responses were 5xx for {len(shares)} windows of {window.seconds // 60} min",
        data={"shares": shares},
        now=now,
    )
