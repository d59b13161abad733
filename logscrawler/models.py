"""The logs crawler's tables: services, raw lines, error fingerprints, occurrences, per-minute rollups.

"Top errors in the last hour / day" reads only the rollups (one row per fingerprint and minute), so it
stays fast however many occurrences there are.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from juggernaut.models import SingleRow


class LogService(models.Model):
    """A service whose logs are collected: a Railway service, or any source pushing to the ingest API."""

    name = models.CharField(max_length=120, unique=True)
    railway_service_id = models.CharField(max_length=64, blank=True, default="")
    railway_environment_id = models.CharField(max_length=64, blank=True, default="")
    railway_project_id = models.CharField(max_length=64, blank=True, default="")
    # the latest deployment (its HTTP logs are crawled) and the last failed one whose logs were backfilled
    railway_deployment_id = models.CharField(max_length=64, blank=True, default="")
    backfilled_deployment_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "log_services"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class FingerprintStatus(models.TextChoices):
    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    IGNORED = "ignored"
    REGRESSED = "regressed"


class ErrorFingerprint(models.Model):
    """One kind of error of one service. ``key`` is the fingerprinter's id; it never changes.

    ``tokens`` and ``order`` let the fingerprinter resume where it stopped; a fingerprint that another
    absorbed (its position turned out to be a variable) points at it through ``merged_into``.
    """

    service = models.ForeignKey(LogService, on_delete=models.CASCADE, related_name="fingerprints")
    key = models.CharField(max_length=32)
    grouping_version = models.CharField(max_length=16)
    template = models.TextField()
    tokens = models.JSONField(default=list, blank=True)  # empty for stack traces: grouped by key alone
    order = models.PositiveIntegerField(default=0)
    general = models.BooleanField(default=False)
    exception_type = models.CharField(max_length=300, blank=True, default="")
    sample = models.TextField(blank=True, default="")
    status = models.CharField(max_length=16, choices=FingerprintStatus.choices, default=FingerprintStatus.NEW)
    count = models.BigIntegerField(default=0)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    task = models.ForeignKey(
        "engine.Task", null=True, blank=True, on_delete=models.SET_NULL, related_name="error_fingerprints"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "error_fingerprints"
        constraints = [
            models.UniqueConstraint(fields=["service", "key"], name="error_fingerprint_unique_key")
        ]
        indexes = [
            # loading a service's live templates before fingerprinting a batch
            models.Index(
                fields=["service", "order"], name="error_fp_live", condition=Q(merged_into__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.service.name}: {self.template[:80]}"


class LogLine(models.Model):
    """One received line (or one folded multi-line event), stored once: ``dedupe`` is unique per service."""

    service = models.ForeignKey(LogService, on_delete=models.CASCADE, related_name="lines")
    timestamp = models.DateTimeField()
    received_at = models.DateTimeField()
    message = models.TextField()
    severity = models.CharField(max_length=32, blank=True, default="")
    level = models.CharField(max_length=16, blank=True, default="")
    is_error = models.BooleanField(default=False)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    source_id = models.CharField(max_length=200, blank=True, default="")
    dedupe = models.CharField(max_length=64)
    fingerprint = models.ForeignKey(
        ErrorFingerprint, null=True, blank=True, on_delete=models.SET_NULL, related_name="lines"
    )

    class Meta:
        db_table = "railway_logs"
        constraints = [models.UniqueConstraint(fields=["service", "dedupe"], name="railway_log_unique_line")]
        indexes = [
            models.Index(fields=["timestamp"], name="railway_log_retention"),  # the daily prune
            models.Index(fields=["service", "-timestamp"], name="railway_log_recent"),  # latest lines
        ]

    def __str__(self) -> str:
        return f"{self.service_id} {self.timestamp:%Y-%m-%d %H:%M:%S} {self.message[:60]}"


class ErrorOccurrence(models.Model):
    """One error line counted against its fingerprint (samples and the detail page read these)."""

    fingerprint = models.ForeignKey(ErrorFingerprint, on_delete=models.CASCADE, related_name="occurrences")
    line = models.OneToOneField(LogLine, on_delete=models.CASCADE, related_name="occurrence")
    timestamp = models.DateTimeField()

    class Meta:
        db_table = "error_occurrences"
        indexes = [models.Index(fields=["fingerprint", "-timestamp"], name="error_occ_latest")]

    def __str__(self) -> str:
        return f"{self.fingerprint_id} at {self.timestamp:%Y-%m-%d %H:%M:%S}"


class ErrorMinute(models.Model):
    """Occurrences of one fingerprint in one minute: what the top-errors and chart queries sum."""

    fingerprint = models.ForeignKey(ErrorFingerprint, on_delete=models.CASCADE, related_name="minutes")
    service = models.ForeignKey(LogService, on_delete=models.CASCADE, related_name="+")
    minute = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "error_rollups_minute"
        constraints = [models.UniqueConstraint(fields=["fingerprint", "minute"], name="error_minute_unique")]
        indexes = [
            # top errors of a service / of every service: the sums come from the index alone (PostgreSQL)
            models.Index(
                fields=["service", "minute"], include=["fingerprint", "count"], name="error_minute_window"
            ),
            models.Index(fields=["minute"], include=["fingerprint", "count"], name="error_minute_all"),
        ]

    def __str__(self) -> str:
        return f"{self.fingerprint_id} {self.minute:%Y-%m-%d %H:%M} ×{self.count}"


class AlertRule(models.TextChoices):
    NEW_FINGERPRINT = "new_fingerprint", "new error"
    SPIKE = "spike", "spike"
    SUSTAINED_5XX = "sustained_5xx", "sustained 5xx"
    REGRESSION = "regression", "regression"
    LOGS_DROPPED = "logs_dropped", "logs dropped by Railway"


class LogAlert(models.Model):
    """A rule that fired. At most one open alert per rule and fingerprint (or per rule and service)."""

    rule = models.CharField(max_length=32, choices=AlertRule.choices)
    service = models.ForeignKey(LogService, on_delete=models.CASCADE, related_name="alerts")
    fingerprint = models.ForeignKey(
        ErrorFingerprint, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts"
    )
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "log_alerts"
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "fingerprint"],
                condition=Q(closed_at__isnull=True, fingerprint__isnull=False),
                name="log_alert_one_open_per_fingerprint",
            ),
            models.UniqueConstraint(
                fields=["rule", "service"],
                condition=Q(closed_at__isnull=True, fingerprint__isnull=True),
                name="log_alert_one_open_per_service",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_rule_display()}: {self.message[:80]}"


class CrawlCursor(models.Model):
    """How far the crawler has read one Railway stream; moves in the same transaction as the rows."""

    stream = models.CharField(max_length=200, unique=True)  # "env:<id>" or "http:<deployment id>"
    position = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "log_crawl_cursors"

    def __str__(self) -> str:
        return f"{self.stream} @ {self.position:%Y-%m-%d %H:%M:%S}"


class CrawlRun(models.Model):
    """One crawl cycle, kept so the System Health page can say what the crawler did and when.

    A running cycle holds the one running row as a lease: it proves it is alive with ``heartbeat_at``
    (before every request), and a cycle whose heartbeat is older than ``LOGS_CRAWL_LEASE_SECONDS`` died
    with its process; the next cycle closes it as failed and takes over.
    """

    class Status(models.TextChoices):
        RUNNING = "running"
        OK = "ok"
        PARTIAL = "partial"  # some streams failed or the request budget ran out
        FAILED = "failed"
        SKIPPED = "skipped"  # not configured

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    lines = models.PositiveIntegerField(default=0)
    new_fingerprints = models.PositiveIntegerField(default=0)
    requests = models.PositiveIntegerField(default=0)
    budget = models.PositiveIntegerField(default=0)
    rate_limit_remaining = models.IntegerField(null=True, blank=True)
    errors = models.JSONField(default=list, blank=True)

    class Meta:
        db_table = "log_crawl_runs"
        ordering = ["-started_at"]
        constraints = [
            # two job clusters never crawl at once: the second cannot open its run
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="running"), name="log_crawl_one_running"
            )
        ]

    def __str__(self) -> str:
        return f"crawl {self.started_at:%Y-%m-%d %H:%M} {self.status}"


class AlertThresholds(SingleRow):
    """Operator overrides of the alert thresholds (one row, edited in the admin); empty: the setting."""

    window_minutes = models.PositiveIntegerField(null=True, blank=True, help_text="LOGS_ALERT_WINDOW_MINUTES")
    spike_factor = models.FloatField(null=True, blank=True, help_text="LOGS_SPIKE_FACTOR")
    spike_min = models.PositiveIntegerField(null=True, blank=True, help_text="LOGS_SPIKE_MIN")
    spike_baseline_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="LOGS_SPIKE_BASELINE_MINUTES"
    )
    fivexx_percent = models.FloatField(null=True, blank=True, help_text="LOGS_5XX_PERCENT")
    fivexx_windows = models.PositiveIntegerField(null=True, blank=True, help_text="LOGS_5XX_WINDOWS")
    fivexx_min_requests = models.PositiveIntegerField(
        null=True, blank=True, help_text="LOGS_5XX_MIN_REQUESTS"
    )

    SETTINGS = {
        "window_minutes": "LOGS_ALERT_WINDOW_MINUTES",
        "spike_factor": "LOGS_SPIKE_FACTOR",
        "spike_min": "LOGS_SPIKE_MIN",
        "spike_baseline_minutes": "LOGS_SPIKE_BASELINE_MINUTES",
        "fivexx_percent": "LOGS_5XX_PERCENT",
        "fivexx_windows": "LOGS_5XX_WINDOWS",
        "fivexx_min_requests": "LOGS_5XX_MIN_REQUESTS",
    }

    class Meta:
        db_table = "log_alert_thresholds"
        verbose_name_plural = "alert thresholds"

    def __str__(self) -> str:
        return "Alert thresholds"

    @classmethod
    def effective(cls) -> dict:
        """Each threshold: the admin's value where set, else the setting."""
        row = cls.peek()
        return {
            field: getattr(row, field) if row and getattr(row, field) is not None else getattr(settings, name)
            for field, name in cls.SETTINGS.items()
        }
