"""The crawl cycle: Railway → records → ``logs_ingest``, one page at a time, never losing a line.

Each page of one stream is stored in the same transaction that moves the stream's cursor, so a crash
mid-cycle resumes from the last stored page and duplicates nothing (the rows of a page fetched twice
are the same rows, deduplicated by their source id). Each cycle spends at most its share of the
plan's hourly request budget; only one cycle runs at a time, however many job clusters there are.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from juggernaut.events import publish
from logscrawler.alerts import alert_open
from logscrawler.clients import LogRow, RailwayClient, RailwayError
from logscrawler.models import AlertRule, CrawlCursor, CrawlRun, LogService
from logscrawler.services import IngestResult, Record, logs_ingest

log = logging.getLogger(__name__)

# Errors and warnings from every service's own log lines; HTTP answers come through httpLogs.
LOG_FILTER = "@level:error OR @level:warn"
STALE_RUN = timedelta(minutes=30)
FIRST_LOOKBACK = timedelta(hours=1)
DISCOVERY_EVERY = timedelta(hours=1)
FAILED_DEPLOYMENTS = {"FAILED", "CRASHED"}


def cycle_budget() -> int:
    """Requests one cycle may send: its share of the hourly limit, with a little kept in reserve."""
    share = settings.LOGS_RAILWAY_HOURLY_REQUESTS * settings.LOGS_CRAWL_MINUTES / 60
    return max(1, int(share * 0.9))


def _run_open(now: datetime) -> CrawlRun | None:
    CrawlRun.objects.filter(status=CrawlRun.Status.RUNNING, started_at__lt=now - STALE_RUN).update(
        status=CrawlRun.Status.FAILED, finished_at=now, errors=["the run stopped without finishing"]
    )
    try:
        with transaction.atomic():
            return CrawlRun.objects.create(started_at=now, budget=cycle_budget())
    except IntegrityError:
        return None  # another cluster is crawling


def crawl_run(*, client: RailwayClient | None = None, now: datetime | None = None) -> CrawlRun | None:
    """One crawl cycle; None when another cycle is already running."""
    now = now or timezone.now()
    client = client or RailwayClient()
    client.budget = cycle_budget()
    run = _run_open(now)
    if run is None:
        return None
    if not client.configured:
        run.status, run.errors = (
            CrawlRun.Status.SKIPPED,
            ["no Railway token: set RAILWAY_TOKEN or RAILWAY_API_TOKEN"],
        )
        return _run_close(run, client, now)
    try:
        environments = _discover(client, now)
        for environment_id in environments:
            _crawl_environment(run, client, environment_id, now)
        for service in LogService.objects.exclude(railway_deployment_id=""):
            _crawl_http(run, client, service, now)
    except RailwayError as exc:
        run.errors.append(str(exc))
    if run.errors:
        run.status = (
            CrawlRun.Status.FAILED
            if run.lines == 0 and client.rate_limit.requests <= 1
            else CrawlRun.Status.PARTIAL
        )
    else:
        run.status = CrawlRun.Status.OK
    return _run_close(run, client, now)


def _run_close(run: CrawlRun, client: RailwayClient, now: datetime) -> CrawlRun:
    run.finished_at = max(now, timezone.now())
    run.requests = client.rate_limit.requests
    run.rate_limit_remaining = client.rate_limit.remaining
    run.save()
    publish("logs", "crawl_finished", {"run_id": run.pk, "status": run.status, "lines": run.lines,
                                        "requests": run.requests, "errors": run.errors[:5]})  # fmt: skip
    return run


def _discover(client: RailwayClient, now: datetime) -> list[str]:
    """Environment ids to crawl; services are (re)read from Railway at most hourly."""
    known = LogService.objects.exclude(railway_environment_id="")
    recent = CrawlRun.objects.filter(
        started_at__gte=now - DISCOVERY_EVERY, status__in=["ok", "partial"]
    ).exists()
    if known.exists() and recent:
        return sorted(set(known.values_list("railway_environment_id", flat=True)))
    environments = []
    for project in client.projects():
        for environment_id, environment in project.environments.items():
            environments.append(environment_id)
            for service_id, name in project.services.items():
                label = name if len(project.environments) == 1 else f"{name} ({environment})"
                service, _ = LogService.objects.update_or_create(
                    railway_service_id=service_id, railway_environment_id=environment_id,
                    defaults={"name": label[:120], "railway_project_id": project.id},
                )  # fmt: skip
                _deployment_track(client, service, now)
    return environments


def _deployment_track(client: RailwayClient, service: LogService, now: datetime) -> None:
    """Remember the latest deployment; backfill the logs of a failed one, once."""
    deployments = client.deployments(
        project_id=service.railway_project_id,
        environment_id=service.railway_environment_id,
        service_id=service.railway_service_id,
        first=1,
    )
    if not deployments:
        return
    latest = deployments[0]
    service.railway_deployment_id = str(latest.get("id") or "")
    if (
        latest.get("status") in FAILED_DEPLOYMENTS
        and service.backfilled_deployment_id != service.railway_deployment_id
    ):
        rows = client.build_logs(service.railway_deployment_id, limit=settings.LOGS_CRAWL_PAGE)
        rows += client.deployment_logs(service.railway_deployment_id, limit=settings.LOGS_CRAWL_PAGE)
        with transaction.atomic():
            records = [_record(row) for row in rows if not row.is_drop_notice]
            if records:
                logs_ingest(service, records, now=now)
            service.backfilled_deployment_id = service.railway_deployment_id
            service.save(update_fields=["railway_deployment_id", "backfilled_deployment_id"])
        return
    service.save(update_fields=["railway_deployment_id"])


def _record(row: LogRow) -> Record:
    return Record(timestamp=row.timestamp, message=row.message, severity=row.severity,
                  attributes=row.attributes, source_id=row.source_id)  # fmt: skip


def _crawl_environment(run: CrawlRun, client: RailwayClient, environment_id: str, now: datetime) -> None:
    stream = f"env:{environment_id}"
    cursor = CrawlCursor.objects.filter(stream=stream).first()
    position = cursor.position if cursor else now - FIRST_LOOKBACK
    run.window_start = min(run.window_start or position, position)
    page = settings.LOGS_CRAWL_PAGE
    services = {
        s.railway_service_id: s for s in LogService.objects.filter(railway_environment_id=environment_id)
    }
    while True:
        try:
            rows = client.environment_logs(environment_id, after=position, limit=page, filter=LOG_FILTER)
        except RailwayError as exc:
            run.errors.append(f"{environment_id}: {exc}")
            return
        if not rows:
            break
        last = rows[-1].timestamp
        with transaction.atomic():
            result = _store_page(services, rows, now)
            CrawlCursor.objects.update_or_create(stream=stream, defaults={"position": last})
        run.lines += result.accepted
        run.new_fingerprints += len(result.new_fingerprints)
        run.window_end = max(run.window_end or last, last)
        # a full page may have more behind it; a page stuck on one instant cannot move further
        if len(rows) < page or last <= position:
            break
        position = last


def _store_page(services: dict[str, LogService], rows: list[LogRow], now: datetime) -> IngestResult:
    total = IngestResult()
    by_service: dict[str, list[Record]] = {}
    for row in rows:
        service = services.get(row.service_id)
        if service is None:
            continue  # a service created since discovery: picked up at the next discovery
        if row.is_drop_notice:
            alert_open(AlertRule.LOGS_DROPPED, service, row.message[:300], now=now)
            continue
        by_service.setdefault(row.service_id, []).append(_record(row))
    for service_id, records in by_service.items():
        result = logs_ingest(services[service_id], records, now=now)
        total.accepted += result.accepted
        total.duplicates += result.duplicates
        total.new_fingerprints += result.new_fingerprints
    return total


def _crawl_http(run: CrawlRun, client: RailwayClient, service: LogService, now: datetime) -> None:
    """HTTP answers of the service's latest deployment: 5xx become errors, and every answer counts
    towards the sustained-5xx share."""
    stream = f"http:{service.railway_deployment_id}"
    cursor = CrawlCursor.objects.filter(stream=stream).first()
    position = cursor.position if cursor else now - FIRST_LOOKBACK
    try:
        rows = client.http_logs(service.railway_deployment_id, after=position, limit=settings.LOGS_CRAWL_PAGE)
    except RailwayError as exc:
        run.errors.append(f"{service.name} HTTP logs: {exc}")
        return
    if not rows:
        return
    records = [
        Record(
            timestamp=row.timestamp,
            message=f"{row.method} {row.path} {row.status}",
            severity="error" if row.status >= 500 else "info",
            attributes={"httpStatus": row.status, "requestId": row.request_id, "durationMs": row.duration_ms},
            source_id=f"http:{row.request_id}" if row.request_id else "",
        )  # fmt: skip
        for row in rows
    ]
    with transaction.atomic():
        result = logs_ingest(service, records, now=now)
        CrawlCursor.objects.update_or_create(stream=stream, defaults={"position": rows[-1].timestamp})
    run.lines += result.accepted
    run.new_fingerprints += len(result.new_fingerprints)
