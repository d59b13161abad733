"""Read models of the log crawler: the queries pages, the API and the chat tools share (no rendering)."""

from datetime import datetime, timedelta

from django.db.models import Sum
from django.utils import timezone

from logscrawler.models import ErrorFingerprint, ErrorMinute, LogService

WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24)}


def top_errors(
    window: str, *, service: LogService | None = None, now: datetime | None = None, limit: int = 50
):
    """The fingerprints with the most occurrences in the window (``1h`` or ``24h``), most first."""
    since = (now or timezone.now()) - WINDOWS[window]
    minutes = ErrorMinute.objects.filter(minute__gte=since.replace(second=0, microsecond=0))
    if service is not None:
        minutes = minutes.filter(service=service)
    totals = list(
        minutes.values("fingerprint_id")
        .annotate(total=Sum("count"))
        .order_by("-total", "fingerprint_id")[:limit]
    )
    rows = ErrorFingerprint.objects.select_related("service").in_bulk([t["fingerprint_id"] for t in totals])
    return [(rows[t["fingerprint_id"]], t["total"]) for t in totals if t["fingerprint_id"] in rows]
